"""Cheap script detection: is a chunk CJK (word-less script) or space-separated?

WHY: several data-juicer ops assume words are separated by spaces or that
full-width punctuation is noise. We gate or replace them by this label.
"zh" means CJK-dominant (Chinese, Japanese, Korean); "en" means everything
else (any space-separated script).
"""
from __future__ import annotations

import regex

CJK_CHAR = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}"
_CJK = regex.compile(f"[{CJK_CHAR}]")
_LETTER = regex.compile(r"[\p{L}\p{N}]")

LANGS = ("zh", "en")


def cjk_ratio(text: str) -> float:
    """Share of CJK characters among letters and digits (0 when there are none)."""
    letters = len(_LETTER.findall(text))
    if not letters:
        return 0.0
    return len(_CJK.findall(text)) / letters


def detect_lang(text: str | None, threshold: float = 0.3) -> str:
    """'zh' when at least `threshold` of the letters are CJK, else 'en'.

    A CJK character carries about a word's worth of text, so 30% CJK letters
    already means most of the words are CJK.
    """
    if not text:
        return "en"
    return "zh" if cjk_ratio(text) >= threshold else "en"


def has_cjk(text: str) -> bool:
    return _CJK.search(text) is not None
