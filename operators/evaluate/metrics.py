"""Scores of one answer against its reference: token F1, ROUGE-L F1, contains; bootstrap CIs over items.

Tokens are those of `infuse.operators.tokens`: a Chinese character is one
token, an English word is one token (after NFKC and case folding, punctuation
dropped), so "char-level" F1 means characters for Chinese and words for
English with one function. A score against several references (the answer
and its aliases) is the best of them, as in SQuAD.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from infuse.operators.tokens import tokens


def f1(pred: str, ref: str) -> float:
    """Harmonic mean of token precision and recall (multiset overlap)."""
    p, r = tokens(pred), tokens(ref)
    if not p or not r:
        return float(p == r)
    common = sum((Counter(p) & Counter(r)).values())
    if common == 0:
        return 0.0
    prec, rec = common / len(p), common / len(r)
    return 2 * prec * rec / (prec + rec)


def lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            cur[j] = prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1])
        prev = cur
    return prev[-1]


def rouge_l(pred: str, ref: str, max_tokens: int = 2000) -> float:
    """ROUGE-L F1: longest common token subsequence over both lengths."""
    p, r = tokens(pred)[:max_tokens], tokens(ref)[:max_tokens]
    if not p or not r:
        return float(p == r)
    n = lcs(p, r)
    if n == 0:
        return 0.0
    prec, rec = n / len(p), n / len(r)
    return 2 * prec * rec / (prec + rec)


def contains(pred: str, refs: list[str]) -> bool:
    """Whether one reference (or alias), as a whole token sequence, appears in the answer."""
    hay = " " + " ".join(tokens(pred)) + " "
    return any(needle.strip() and f" {needle} " in hay for needle in (" ".join(tokens(r)) for r in refs))


def score(pred: str | None, ref: str, aliases: list[str] | None = None) -> dict[str, float]:
    refs = [ref, *(aliases or [])]
    pred = pred or ""
    return {"f1": max(f1(pred, r) for r in refs), "rouge_l": max(rouge_l(pred, r) for r in refs),
            "contains": float(contains(pred, refs))}


def bootstrap_ci(values: list[float], n: int = 1000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float, float]:
    """Mean and the (alpha/2, 1-alpha/2) percentile interval of the mean over resampled items."""
    x = np.asarray([v for v in values if v is not None and not np.isnan(v)], dtype=float)
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    if len(x) == 1 or n <= 0:
        return float(x.mean()), float(x.mean()), float(x.mean())
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n, len(x)))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(x.mean()), float(lo), float(hi)
