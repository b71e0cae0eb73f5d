"""k-center greedy: cover the embedding space with k centers, each the point farthest from those chosen.

The first center is drawn with a seeded generator (or given as `initial`), so a
run repeats; ties go to the lowest index. Distances are Euclidean, which on
L2-normalised embeddings (MiniLM) orders points as cosine distance does.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def k_center_greedy(x: np.ndarray, k: int, seed: int = 0, initial: Sequence[int] = ()) -> list[int]:
    """Indices of k new centers, in the order chosen. `initial`: centers already chosen (not returned)."""
    x = np.asarray(x, dtype=np.float32)
    n = len(x)
    k = min(k, n - len(set(initial)))
    if k <= 0:
        return []
    dist = np.full(n, np.inf, dtype=np.float64)
    taken = np.zeros(n, dtype=bool)
    chosen: list[int] = []

    def add(j: int) -> None:
        nonlocal dist
        taken[j] = True
        dist = np.minimum(dist, np.linalg.norm(x - x[j], axis=1))

    for j in initial:
        add(int(j))
    if not initial:
        j = int(np.random.default_rng(seed).integers(n))
        add(j)
        chosen.append(j)
    while len(chosen) < k:
        gap = np.where(taken, -1.0, dist)
        j = int(np.argmax(gap))  # the first of equal maxima: ties by index
        add(j)
        chosen.append(j)
    return chosen
