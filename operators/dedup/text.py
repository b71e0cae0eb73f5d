"""Exact-dedup normalisation; shingles come from the shared tokenizer (operators.common.tokens)."""
from __future__ import annotations

import hashlib
import unicodedata

import regex

from infuse.operators.common.tokens import shingles

__all__ = ["exact_key", "normalize_exact", "shingles"]

_PUNCT = regex.compile(r"\p{P}+")
_SPACE = regex.compile(r"\s+")


def normalize_exact(text: str) -> str:
    """NFKC, casefold, punctuation removed, whitespace collapsed: what 'the same text' means for exact dedup."""
    t = unicodedata.normalize("NFKC", text).casefold()
    t = _PUNCT.sub(" ", t)
    return _SPACE.sub(" ", t).strip()


def exact_key(text: str) -> int:
    """64-bit key of the normalised text (blake2b); collisions are ~1e-8 at a million chunks."""
    return int.from_bytes(hashlib.blake2b(normalize_exact(text).encode(), digest_size=8).digest(), "little")
