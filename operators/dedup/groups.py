"""Candidate pairs from equal keys, and connected components (scipy) over pairs."""
from __future__ import annotations

import numpy as np

ALL_PAIRS_MAX = 64  # runs up to this size give all pairs; larger ones a star from their first member


def pairs_from_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j), i != j, with keys[i] == keys[j].

    Runs of equal keys up to ALL_PAIRS_MAX give all their pairs; a larger run
    gives (first, other) pairs only, so a huge bucket cannot blow up memory.
    """
    n = len(keys)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    starts = np.flatnonzero(np.concatenate([[True], k[1:] != k[:-1]]))
    sizes = np.diff(np.concatenate([starts, [n]]))
    a_parts, b_parts = [], []
    big = sizes > ALL_PAIRS_MAX
    # star pairs for big runs
    for s, z in zip(starts[big], sizes[big]):
        a_parts.append(np.full(z - 1, order[s]))
        b_parts.append(order[s + 1 : s + z])
    # all pairs for small runs, grouped by size so it stays vectorised
    for z in np.unique(sizes[(sizes > 1) & ~big]):
        run_starts = starts[sizes == z]
        iu, ju = np.triu_indices(z, k=1)
        a_parts.append(order[(run_starts[:, None] + iu[None, :]).ravel()])
        b_parts.append(order[(run_starts[:, None] + ju[None, :]).ravel()])
    if not a_parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(a_parts).astype(np.int64), np.concatenate(b_parts).astype(np.int64)


def components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Component label of each of n nodes given edges (a, b)."""
    if n == 0:
        return np.zeros(0, np.int64)
    if len(a) == 0:
        return np.arange(n, dtype=np.int64)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    g = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    _, labels = connected_components(g, directed=False)
    return labels.astype(np.int64)
