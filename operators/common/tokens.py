"""Tokens for lexical measures, the one tokenizer of dedup, grounding and question dedup.

A token is a single CJK character or a run of other letters and digits, after
NFKC and case folding; punctuation and spaces separate tokens and are dropped.
So one measure works for Chinese and English alike.
"""
from __future__ import annotations

import unicodedata

import regex

from infuse.operators.common.lang import CJK_CHAR

_TOKEN = regex.compile(f"[{CJK_CHAR}]|[^\\W{CJK_CHAR}]+")


def tokens(text: str | None) -> list[str]:
    return _TOKEN.findall(unicodedata.normalize("NFKC", text or "").casefold())


def ngrams(toks: list[str], n: int) -> list[tuple[str, ...]]:
    """The token n-grams in order; a text shorter than n tokens is one n-gram."""
    if len(toks) < n:
        return [tuple(toks)] if toks else []
    return [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]


def shingles(text: str, n: int) -> list[bytes]:
    """Distinct n-token shingles as bytes (for hashing); a text shorter than n tokens is one shingle."""
    return list({" ".join(g).encode() for g in ngrams(tokens(text), n)})
