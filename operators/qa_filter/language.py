"""Is a sample in one language? The language-consistency check of qa_filter.

A sample is mixed when one of its turns mixes the prose of two languages
("我是the LotusDB team开发的人工智能助手", "What is the 处理建议 of X?"), or when
its turns are in different languages (an English question answered in
Chinese). Prose is judged by `infuse.operators.common.lang.prose_runs`: identifiers,
API names, error codes, numbers and code never count as English.

Words a turn takes verbatim from its document (a heading, a field name, a
quoted term) are the document's own and do not make it mixed; they only decide
a turn's language when the turn has no prose of its own (an answer that is
exact source text).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field

from infuse.operators.common.base import Strict
from infuse.operators.common.lang import majority, prose_runs


class LanguageOptions(Strict):
    enabled: bool = True
    min_cjk_run: int = Field(2, ge=1, description="CJK characters in a row that make an English turn mixed")
    min_units: float = Field(1.0, ge=0, description="prose (in words) a turn needs before its language is judged")


def _norm(text: str) -> str:
    return " ".join(text.split())


def check_language(messages: list[dict[str, str]], source: Callable[[], str], opts: LanguageOptions,
                   ) -> tuple[str | None, dict[str, Any] | None]:
    """(the sample's language or None, None) when consistent; (None, detail) when mixed.

    `source` returns the text the sample may quote (its document); it is called
    only for turns that hold both scripts.
    """
    src: list[str] = []

    def in_source(run: str) -> bool:
        if not src:
            src.append(_norm(source() or ""))
        return bool(run) and _norm(run) in src[0]

    langs: list[tuple[int, str, str]] = []  # (turn, role, lang)
    for turn, m in enumerate(messages):
        if m.get("role") not in ("user", "assistant"):
            continue
        runs = prose_runs(m.get("content") or "")
        if len({lang for lang, _, _ in runs}) > 1:
            own = [r for r in runs if not in_source(r[1])]
            en = [text for rl, text, _ in own if rl == "en"]
            zh = [text for rl, text, _ in own if rl == "zh" and len(text) >= opts.min_cjk_run]
            if en and zh:  # the turn's own words (not quoted from the document) are in two languages
                lang = majority(runs, 0) or "zh"  # what the turn mostly is; the other language is the intruder
                bad = zh if lang == "en" else en
                return None, {"turn": turn, "role": m["role"], "lang": lang,
                              "why": f"{'Chinese' if lang == 'en' else 'English'} prose inside a "
                                     f"{'English' if lang == 'en' else 'Chinese'} turn", "runs": bad[:3]}
            lang = majority(own, opts.min_units) or majority(runs, opts.min_units)
        else:
            lang = majority(runs, opts.min_units)
        if lang:
            langs.append((turn, m["role"], lang))
    found = sorted({lang for _, _, lang in langs})
    if len(found) > 1:
        first = {lang: (turn, role) for turn, role, lang in reversed(langs)}
        return None, {"why": "turns in different languages",
                      "turns": {lang: {"turn": t, "role": r} for lang, (t, r) in sorted(first.items())}}
    return (found[0] if found else None), None
