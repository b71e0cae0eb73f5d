"""Facility location: pick k rows that best represent all rows (greedy, lazy evaluations).

f(S) = sum over every row i of max_{j in S} sim(i, j), with sim = (1 + cos) / 2
in [0, 1] so f is monotone submodular and greedy is within 1 - 1/e of the best.
Lazy greedy keeps each candidate's last gain as an upper bound (gains only
shrink) and re-evaluates only the top one, so most steps cost one O(n·d)
column. The similarity matrix is never held whole: the first gains are summed
block by block.
"""
from __future__ import annotations

import heapq

import numpy as np


def _sim(x: np.ndarray, cols: np.ndarray) -> np.ndarray:
    return (1.0 + x @ x[cols].T) / 2.0


def facility_location(x: np.ndarray, k: int, block: int = 1024) -> list[int]:
    """Indices of k rows, in the order chosen (ties by index)."""
    x = np.asarray(x, dtype=np.float32)
    n = len(x)
    k = min(k, n)
    if k <= 0:
        return []
    gains = np.zeros(n, dtype=np.float64)
    for s in range(0, n, block):
        gains[s:s + block] = _sim(x, np.arange(s, min(n, s + block))).sum(axis=0)
    heap = [(-g, j) for j, g in enumerate(gains)]
    heapq.heapify(heap)
    best = np.zeros(n, dtype=np.float64)  # each row's similarity to its closest chosen row
    chosen: list[int] = []
    while len(chosen) < k and heap:
        _, j = heapq.heappop(heap)
        col = _sim(x, np.array([j]))[:, 0]
        gain = float(np.maximum(col - best, 0.0).sum())
        if heap and gain < -heap[0][0] - 1e-12:  # no longer the best: put it back with its true gain
            heapq.heappush(heap, (-gain, j))
            continue
        chosen.append(j)
        best = np.maximum(best, col)
    return chosen
