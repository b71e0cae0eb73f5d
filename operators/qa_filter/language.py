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
    quoted = _Quoted(source)
    langs: list[tuple[int, str, str]] = []  # (turn, role, lang)
    for turn, m in enumerate(messages):
        if m.get("role") not in ("user", "assistant"):
            continue
        lang, problem = _turn_language(turn, m, quoted, opts)
        if problem is not None:
            return None, problem
        if lang:
            langs.append((turn, m["role"], lang))
    return _across_turns(langs)


class _Quoted:
    """Whether a run of prose is the document's own words; the document is read on first use."""

    def __init__(self, source: Callable[[], str]) -> None:
        self.source = source
        self.text: str | None = None

    def __contains__(self, run: str) -> bool:
        if self.text is None:
            self.text = _norm(self.source() or "")
        return bool(run) and _norm(run) in self.text


def _turn_language(turn: int, m: dict[str, str], quoted: _Quoted, opts: LanguageOptions,
                   ) -> tuple[str | None, dict[str, Any] | None]:
    """(the turn's language or None, None), or (None, detail) when its own words mix two languages."""
    runs = prose_runs(m.get("content") or "")
    if len({lang for lang, _, _ in runs}) <= 1:
        return majority(runs, opts.min_units), None
    own = [r for r in runs if r[1] not in quoted]
    problem = _mixed(turn, m["role"], runs, own, opts)
    if problem is not None:
        return None, problem
    return majority(own, opts.min_units) or majority(runs, opts.min_units), None


def _mixed(turn: int, role: str, runs: list[tuple[str, str, float]], own: list[tuple[str, str, float]],
           opts: LanguageOptions) -> dict[str, Any] | None:
    """The detail of a turn whose own words (not quoted from the document) are in two languages, else None."""
    en = [text for rl, text, _ in own if rl == "en"]
    zh = [text for rl, text, _ in own if rl == "zh" and len(text) >= opts.min_cjk_run]
    if not (en and zh):
        return None
    lang = majority(runs, 0) or "zh"  # what the turn mostly is; the other language is the intruder
    bad = zh if lang == "en" else en
    return {"turn": turn, "role": role, "lang": lang,
            "why": f"{'Chinese' if lang == 'en' else 'English'} prose inside a "
                   f"{'English' if lang == 'en' else 'Chinese'} turn", "runs": bad[:3]}


def _across_turns(langs: list[tuple[int, str, str]]) -> tuple[str | None, dict[str, Any] | None]:
    """The sample's one language, or the first turn of each language when its turns differ."""
    found = sorted({lang for _, _, lang in langs})
    if len(found) > 1:
        first = {lang: (turn, role) for turn, role, lang in reversed(langs)}
        return None, {"why": "turns in different languages",
                      "turns": {lang: {"turn": t, "role": r} for lang, (t, r) in sorted(first.items())}}
    return (found[0] if found else None), None
