"""Text normalisation and shingling for dedup."""
from __future__ import annotations

import hashlib
import unicodedata

import regex

from infuse.operators.clean.lang import CJK_CHAR

_PUNCT = regex.compile(r"\p{P}+")
_SPACE = regex.compile(r"\s+")
_TOKEN = regex.compile(f"[{CJK_CHAR}]|[^\\s\\p{{P}}{CJK_CHAR}]+")


def normalize_exact(text: str) -> str:
    """NFKC, casefold, punctuation removed, whitespace collapsed: what 'the same text' means for exact dedup."""
    t = unicodedata.normalize("NFKC", text).casefold()
    t = _PUNCT.sub(" ", t)
    return _SPACE.sub(" ", t).strip()


def exact_key(text: str) -> int:
    """64-bit key of the normalised text (blake2b); collisions are ~1e-8 at a million chunks."""
    return int.from_bytes(hashlib.blake2b(normalize_exact(text).encode(), digest_size=8).digest(), "little")


def tokens(text: str) -> list[str]:
    """Words of space-separated scripts and single CJK characters; punctuation dropped."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).casefold())


def shingles(text: str, n: int) -> list[bytes]:
    """Distinct n-token shingles; a text shorter than n tokens is one shingle."""
    toks = tokens(text)
    if not toks:
        return []
    if len(toks) <= n:
        return [" ".join(toks).encode()]
    return list({" ".join(toks[i : i + n]).encode() for i in range(len(toks) - n + 1)})
