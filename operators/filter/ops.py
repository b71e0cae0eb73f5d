"""infuse's own stat ops: data-juicer's word stats with jieba words for Chinese.

data-juicer's `words_num_filter` and `word_repetition_filter` split on
whitespace unless they load a hub sentencepiece model, so a Chinese
paragraph counts as about one word. These compute the same stats with the
same refinement (strip data-juicer's special characters, lowercase for
repetition), but segment CJK text with jieba, which runs offline.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

StatFn = Callable[[list[str], Sequence[str], dict[str, Any]], list[float]]


def words(text: str, lang: str) -> list[str]:
    """Words of a text: jieba for CJK-dominant text, whitespace otherwise (as data-juicer does)."""
    from data_juicer.ops.common.helper_func import split_on_whitespace

    if lang == "zh":
        from infuse.operators.common.dj import quiet_jieba

        return quiet_jieba().lcut(text)
    return split_on_whitespace(text, True, True)


def _refine(ws: list[str], lower: bool) -> list[str]:
    from data_juicer.ops.common.helper_func import words_refinement
    from data_juicer.ops.common.special_characters import SPECIAL_CHARACTERS

    return words_refinement(ws, lower_case=lower, strip_chars=SPECIAL_CHARACTERS)


def words_num(texts: list[str], langs: Sequence[str], params: dict[str, Any]) -> list[float]:
    return [float(len(_refine(words(t, lang), False))) for t, lang in zip(texts, langs)]


def word_repetition(texts: list[str], langs: Sequence[str], params: dict[str, Any]) -> list[float]:
    """Share of word n-grams (n = rep_len) that occur more than once; data-juicer's formula."""
    n = int(params.get("rep_len", 10))
    out = []
    for t, lang in zip(texts, langs):
        ws = _refine(words(t, lang), True)
        freq: dict[str, int] = {}
        for i in range(len(ws) - n + 1):
            key = " ".join(ws[i : i + n])
            freq[key] = freq.get(key, 0) + 1
        total = sum(freq.values())
        rep = sum(v for v in freq.values() if v > 1)
        out.append(rep / total if total else 0.0)
    return out


# name -> (stat key, function, allowed params)
INFUSE_FILTERS: dict[str, tuple[str, StatFn, set[str]]] = {
    "infuse_words_num": ("num_words", words_num, set()),
    "infuse_word_repetition": ("word_rep_ratio", word_repetition, {"rep_len"}),
}
