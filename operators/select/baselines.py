"""The arithmetic of the cheap baselines (methods/longest, deita, random_draw).

- `answer_lengths`: answer length in lexical tokens, so Chinese and English
  compare (method `longest` keeps the longest);
- `cosine_diversity`: DEITA-style: visit rows in score order and keep a row
  unless its cosine similarity to one already kept reaches the threshold;
- `random_order`: a seeded shuffle.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from infuse.operators.common.tokens import tokens


def answer_lengths(answers: Sequence[str]) -> np.ndarray:
    return np.array([len(tokens(a)) for a in answers], dtype=np.int64)


def random_order(n: int, k: int, seed: int = 0) -> list[int]:
    return [int(i) for i in np.random.default_rng(seed).permutation(n)[:k]]


def cosine_diversity(x: np.ndarray, order: Sequence[int], k: int, threshold: float = 0.9) -> tuple[list[int], list[int]]:
    """(kept, redundant): visit `order`, keep a row whose max cosine to the kept rows is below `threshold`,
    until k are kept. Rows never visited are in neither list. `x` is L2-normalised."""
    x = np.asarray(x, dtype=np.float32)
    kept: list[int] = []
    redundant: list[int] = []
    closest = np.full(len(x), -np.inf, dtype=np.float32)  # each row's max cosine to the kept rows
    for i in order:
        if len(kept) >= k:
            break
        if closest[i] >= threshold:
            redundant.append(int(i))
            continue
        kept.append(int(i))
        closest = np.maximum(closest, x @ x[i])
    return kept, redundant
