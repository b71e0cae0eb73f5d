"""Semantic near-duplicates, SemDeDup-style: cluster the embeddings, compare only within a cluster.

Embeddings are the packaged MiniLM's (unit length, so a dot product is the
cosine), kept as float16: 1M chunks take 768 MB. Spherical k-means is fitted
on a sample and then assigns every embedding in blocks; within each cluster
the similarities are computed a block of rows at a time, so memory stays at
one block x cluster size, never n x n. A pair at cosine >= threshold is an
edge; the caller clusters edges into components like the other stages.
"""
from __future__ import annotations

import numpy as np

BLOCK = 2048  # rows per similarity block: 2048 x cluster size float32
FIT_SAMPLE = 64  # k-means is fitted on at most this many points per cluster
ITERATIONS = 12


def embed(texts: list[str]) -> np.ndarray:
    """(len(texts), 384) float16 unit vectors from the packaged MiniLM."""
    from infuse.operators.common.models import embed as minilm

    return minilm(texts).astype(np.float16)


def _assign(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    out = np.empty(len(x), np.int64)
    c = centroids.astype(np.float32)
    for i in range(0, len(x), 65536):
        out[i : i + 65536] = np.argmax(x[i : i + 65536].astype(np.float32) @ c.T, axis=1)
    return out


def kmeans(x: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Cluster label of each row: spherical k-means fitted on a sample, then every row assigned."""
    n = len(x)
    k = max(1, min(k, n))
    if k == 1:
        return np.zeros(n, np.int64)
    rng = np.random.default_rng(seed)
    sample = x[rng.choice(n, size=min(n, k * FIT_SAMPLE), replace=False)].astype(np.float32)
    centroids = sample[rng.choice(len(sample), size=k, replace=False)]
    for _ in range(ITERATIONS):
        labels = np.argmax(sample @ centroids.T, axis=1)
        sums = np.zeros_like(centroids)
        np.add.at(sums, labels, sample)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        empty = norms[:, 0] == 0
        centroids = np.where(empty[:, None], centroids, sums / np.maximum(norms, 1e-12))
    return _assign(x, centroids)


def near_pairs(x: np.ndarray, threshold: float, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs (a < b) of one cluster with cosine >= threshold."""
    labels = kmeans(x, k, seed)
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    a_parts, b_parts = [], []
    for members in np.split(order, bounds):
        if len(members) < 2:
            continue
        emb = x[members].astype(np.float32)
        for i in range(0, len(members), BLOCK):
            sims = emb[i : i + BLOCK] @ emb[i:].T  # only columns from this block on: each pair once
            r, c = np.nonzero(np.triu(sims >= threshold, k=1))
            a_parts.append(members[i + r])
            b_parts.append(members[i + c])
    if not a_parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(a_parts).astype(np.int64), np.concatenate(b_parts).astype(np.int64)
