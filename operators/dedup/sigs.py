"""Signatures of a set of chunks, column-wise: numpy arrays, not Python objects, so a million chunks fit in a few GB."""
from __future__ import annotations

import numpy as np

COLUMNS = ("length", "text_hash", "exact", "has_exact", "simhash", "has_simhash", "minhash", "has_minhash",
           "semantic", "has_semantic")


class Sigs:
    """Each stage's signature of each chunk, with a flag saying whether the chunk has one."""

    def __init__(self, n: int, num_perm: int, dim: int = 0) -> None:
        self.num_perm, self.dim = num_perm, dim
        self.ids: list[str] = []
        self.length = np.zeros(n, np.int64)
        self.text_hash = np.zeros(n, np.uint64)  # a stored signature is reused only for the same text
        self.exact = np.zeros(n, np.uint64)
        self.has_exact = np.zeros(n, bool)
        self.simhash = np.zeros(n, np.uint64)
        self.has_simhash = np.zeros(n, bool)
        self.minhash = np.zeros((n, num_perm), np.uint32)
        self.has_minhash = np.zeros(n, bool)
        self.semantic = np.zeros((n, dim), np.float16)  # unit-length MiniLM embeddings
        self.has_semantic = np.zeros(n, bool)

    @staticmethod
    def concat(parts: list["Sigs"], num_perm: int, dim: int = 0) -> "Sigs":
        out = Sigs(0, num_perm, dim)
        if not parts:
            return out
        for name in COLUMNS:
            setattr(out, name, np.concatenate([getattr(p, name) for p in parts]))
        out.ids = [i for p in parts for i in p.ids]
        return out

    def subset(self, rows: np.ndarray) -> "Sigs":
        out = Sigs(0, self.num_perm, self.dim)
        out.ids = [self.ids[i] for i in rows]
        for name in COLUMNS:
            setattr(out, name, getattr(self, name)[rows])
        return out

    def copy_rows(self, stage: str, rows: np.ndarray, src: "Sigs", src_rows: np.ndarray) -> None:
        """Copy one stage's signatures (and presence flags) of src rows into these rows."""
        getattr(self, stage)[rows] = getattr(src, stage)[src_rows]
        getattr(self, f"has_{stage}")[rows] = getattr(src, f"has_{stage}")[src_rows]
