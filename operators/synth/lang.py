"""Prompt language by CJK share: Chinese chunks get Chinese prompts, the rest English."""
from __future__ import annotations

import re

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff]")
_LATIN = re.compile(r"[A-Za-z]")


def cjk_ratio(text: str) -> float:
    """CJK characters over CJK + Latin letters (digits, punctuation and spaces ignored)."""
    cjk = len(_CJK.findall(text))
    latin = len(_LATIN.findall(text))
    return cjk / (cjk + latin) if cjk + latin else 0.0


def detect_lang(text: str, threshold: float = 0.2, forced: str = "auto") -> str:
    if forced in ("zh", "en"):
        return forced
    return "zh" if cjk_ratio(text[:4000]) >= threshold else "en"


def estimate_tokens(text: str) -> int:
    """~1 token per 1.5 CJK chars and per 4 other chars: the no-tokenizer estimate for planning."""
    cjk = len(_CJK.findall(text))
    return int(round(cjk / 1.5 + (len(text) - cjk) / 4.0))
