"""The chunk index the rag and raft strategies retrieve from (and evaluate's retrieval baseline).

Every chunk is embedded once per run (MiniLM by default); questions are
matched by cosine similarity.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from infuse.operators.synthesize.core import Context, ItemFailure


@dataclass
class ChunkIndex:
    """Chunk embeddings (rows L2-normalised) for cosine top-k retrieval."""

    chunk_ids: list[str]
    vectors: np.ndarray
    _pos: dict[str, int] | None = None

    def vector(self, chunk_id: str) -> np.ndarray | None:
        """The stored (normalised) vector of a chunk; None when it is not in the index."""
        if self._pos is None:
            self._pos = {cid: i for i, cid in enumerate(self.chunk_ids)}
        i = self._pos.get(chunk_id)
        return None if i is None else self.vectors[i]

    def top_k(self, query_vecs: np.ndarray, k: int, exclude: str | None = None) -> list[list[tuple[str, float]]]:
        if len(self.chunk_ids) == 0:
            return [[] for _ in range(len(query_vecs))]
        scores = np.asarray(query_vecs, dtype=np.float32) @ self.vectors.T
        out = []
        for row in scores:
            order = np.argsort(-row, kind="stable")
            hits = []
            for j in order:
                cid = self.chunk_ids[int(j)]
                if cid == exclude:
                    continue
                hits.append((cid, float(row[int(j)])))
                if len(hits) == k:
                    break
            out.append(hits)
        return out


def normalise(m: Any) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero), so a dot product is the cosine."""
    m = np.asarray(m, dtype=np.float32)
    if m.ndim == 1:
        m = m[None, :]
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(norms == 0, 1.0, norms)


def default_embed_fn() -> Callable[[list[str]], np.ndarray]:
    """The packaged MiniLM embedder, loaded on first use."""
    from infuse.operators.common.models import embed

    return embed


def build_index(chunks: dict[str, dict[str, Any]] | list[dict[str, Any]],
                embed_fn: Callable[[list[str]], Any] | None = None) -> ChunkIndex:
    """Embed every chunk once; build it once per run and pass it to every shard's run_items."""
    rows = list(chunks.values()) if isinstance(chunks, dict) else list(chunks)
    rows.sort(key=lambda r: r["chunk_id"])
    fn = embed_fn or default_embed_fn()
    vecs = normalise(fn([r["text"] for r in rows])) if rows else np.zeros((0, 1), dtype=np.float32)
    return ChunkIndex([r["chunk_id"] for r in rows], vecs)


def corpus_index(ctx: Context) -> ChunkIndex:
    """The run's index (prebuilt by the caller, else built here once, from every chunk given)."""
    if ctx.index is None:
        try:
            ctx.index = build_index(ctx.chunks, ctx.embed_fn)
        except Exception as e:  # the embedder is infrastructure, but one item must not crash the run
            raise ItemFailure("embed_error", f"could not embed the corpus: {e}") from e
    return ctx.index
