"""Script detection, the one detector every step uses: is a text CJK (a word-less script) or not?

WHY: several data-juicer ops assume space-separated words, synthesis picks
its prompt language by it, and qa_filter checks a sample keeps one language.
"zh" means CJK-dominant (Chinese, Japanese, Korean); "en" means any
space-separated script.
"""
from __future__ import annotations

import regex

CJK_CHAR = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}"
_CJK = regex.compile(f"[{CJK_CHAR}]")
_LETTER = regex.compile(r"\p{L}")

LANGS = ("zh", "en")
ZH_THRESHOLD = 0.2


def cjk_ratio(text: str) -> float:
    """CJK characters over all letters (digits, punctuation and spaces ignored); 0 when there are none.

    A CJK character carries about a word's worth of text, so a 20% share
    already means a large part of the words are CJK.
    """
    letters = len(_LETTER.findall(text))
    return len(_CJK.findall(text)) / letters if letters else 0.0


def detect_lang(text: str | None, threshold: float = ZH_THRESHOLD, forced: str = "auto") -> str:
    """'zh' when at least `threshold` of the letters (of the first 4000 chars) are CJK, else 'en'."""
    if forced in LANGS:
        return forced
    if not text:
        return "en"
    return "zh" if cjk_ratio(text[:4000]) >= threshold else "en"


def has_cjk(text: str) -> bool:
    return _CJK.search(text) is not None


def estimate_tokens(text: str) -> int:
    """~1 token per 1.5 CJK chars and per 4 other chars: the no-tokenizer estimate for planning."""
    cjk = len(_CJK.findall(text))
    return int(round(cjk / 1.5 + (len(text) - cjk) / 4.0))
