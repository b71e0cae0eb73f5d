"""MinHash signatures for many documents at once, bit-identical to datasketch's.

datasketch's `MinHash.update_batch` signs one document per call. We take its
permutations (scheme affine32) and its formula — fmix32 of each shingle's
32-bit hash, then a·h + b mod 2^32, then the column minimum — and apply
them to a whole batch with numpy. `tests/test_dedup.py` checks equality with
`datasketch.MinHash(..., hashfunc=xxh32_intdigest).update_batch`.
LSH banding follows datasketch too: band i is hashvalues[i·r:(i+1)·r].
"""
from __future__ import annotations

import numpy as np
import xxhash

MAX_CELLS = 4_000_000  # shingles x num_perm per numpy step (~16 MB of uint32)


def hashfunc(b: bytes) -> int:
    return xxhash.xxh32_intdigest(b)


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimising false positives + false negatives, as datasketch.MinHashLSH picks them."""
    from datasketch.lsh import _optimal_param

    b, r = _optimal_param(threshold, num_perm, 0.5, 0.5)
    return int(b), int(r)


class MinhashSigner:
    def __init__(self, num_perm: int, seed: int = 1) -> None:
        from datasketch import MinHash
        from datasketch.minhash import _fmix

        proto = MinHash(num_perm=num_perm, seed=seed, hashfunc=hashfunc, scheme="affine32")
        self.num_perm = num_perm
        self.a = np.asarray(proto.permutations[0], dtype=np.uint32)
        self.b = np.asarray(proto.permutations[1], dtype=np.uint32)
        self._fmix = _fmix
        self.empty = np.asarray(proto.hashvalues, dtype=np.uint32)  # all 2^32-1

    def sign(self, docs: list[list[bytes]]) -> np.ndarray:
        """(len(docs), num_perm) uint32 signatures; a document without shingles gets the empty signature."""
        out = np.tile(self.empty, (len(docs), 1))
        step = max(1, MAX_CELLS // self.num_perm)
        i = 0
        while i < len(docs):
            j, cells = i, 0
            while j < len(docs) and (cells + len(docs[j]) <= step or j == i):
                cells += len(docs[j])
                j += 1
            self._sign_range(docs, i, j, out)
            i = j
        return out

    def _sign_range(self, docs: list[list[bytes]], i: int, j: int, out: np.ndarray) -> None:
        lens = np.fromiter((len(d) for d in docs[i:j]), dtype=np.int64, count=j - i)
        nonempty = np.flatnonzero(lens)
        if not len(nonempty):
            return
        hv = np.fromiter((hashfunc(s) for d in docs[i:j] for s in d), dtype=np.uint32, count=int(lens.sum()))
        hv = self._fmix(hv, 32)
        phv = hv[:, None] * self.a[None, :] + self.b[None, :]  # uint32 arithmetic wraps: mod 2^32
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]])[nonempty]
        out[i + nonempty] = np.minimum.reduceat(phv, starts, axis=0)


_MULT = np.uint64(0x9E3779B97F4A7C15)


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(N, bands) uint64: one hash per band of `rows` consecutive hash values."""
    n = sig.shape[0]
    keys = np.zeros((n, bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for band in range(bands):
            h = np.full(n, np.uint64(band + 1) * _MULT, dtype=np.uint64)
            for col in range(band * rows, (band + 1) * rows):
                h = (h ^ sig[:, col].astype(np.uint64)) * _MULT  # one column at a time: no N x P uint64 copy
                h ^= h >> np.uint64(29)
            keys[:, band] = h
    return keys


def jaccard(sig: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Estimated Jaccard (share of equal hash values) of row pairs (a[i], b[i])."""
    out = np.empty(len(a), dtype=np.float64)
    for k in range(0, len(a), chunk):
        out[k : k + chunk] = (sig[a[k : k + chunk]] == sig[b[k : k + chunk]]).mean(axis=1)
    return out
