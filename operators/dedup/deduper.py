"""Deduper: exact, SimHash, MinHash-LSH and semantic (embedding) stages (stages.py) over a stream of chunk batches.

Two passes: `add_batch` on every batch, `resolve()` once -> (keep ids,
rejects), then `apply_batch` on every batch again. Stages run in order
(exact, simhash, minhash, semantic) on the survivors of the previous one;
clusters are connected components of matching pairs; each keeps one chunk.

Signatures are kept as numpy arrays (not Python objects) so a million chunks
fit in a few GB. `index()` returns them as a table; a later run given that
table reuses the signature of every chunk_id it already holds (for the
stages whose params are unchanged). In `resolve()`, index rows that were kept
and are absent from this run ("prior" chunks) take part too and always win
their cluster, so an incremental run fed only new chunks rejects those that
duplicate old ones.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pyarrow as pa

from infuse.operators.common.base import Reject
from infuse.operators.dedup.config import DedupConfig
from infuse.operators.dedup.groups import components
from infuse.operators.dedup.sigs import Sigs
from infuse.operators.dedup.stages import (EMBED_DIM, EMBED_VERSION, EXACT_VERSION, REASONS, STAGE_TYPES, STAGES,
                                           Langs, Stage)

__all__ = ["Deduper", "EMBED_DIM", "EMBED_VERSION", "EXACT_VERSION", "INDEX_META_KEY", "REASONS", "STAGES",
           "text_hash"]

INDEX_META_KEY = b"infuse_dedup"


def text_hash(text: str) -> int:
    """64-bit hash of the raw text: the key that makes a stored signature valid."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


class Deduper:
    """Two passes over the chunks (add_batch, then apply_batch after one resolve()); see the module docstring."""

    def __init__(self, cfg: DedupConfig | None = None, index: pa.Table | None = None) -> None:
        self.cfg = cfg or DedupConfig.default()
        self.stages: list[Stage] = [t(self.cfg) for t in STAGE_TYPES]
        self.active = [s for s in self.stages if s.fingerprint is not None]
        self.fingerprints = {s.name: s.fingerprint for s in self.stages}
        self.num_perm = self.cfg.minhash.num_perm if self.cfg.minhash else 0
        self.dim = EMBED_DIM if self.cfg.semantic else 0
        minhash = self.stages[STAGES.index("minhash")]
        self.bands, self.rows = minhash.bands, minhash.rows  # type: ignore[attr-defined]
        self.computed = {s: 0 for s in STAGES}
        self.loaded = {s: 0 for s in STAGES}
        self._parts: list[Sigs] = []
        self._kept_flags: list[np.ndarray] = []
        self._mode: str | None = None
        self._resolved: tuple[set[str], set[str]] | None = None
        self._clusters = {s: 0 for s in STAGES}
        self._rejected = {r: 0 for r in REASONS.values()}
        self._load_index(index)

    # -- index ---------------------------------------------------------------

    def _load_index(self, index: pa.Table | None) -> None:
        self._cache_pos: dict[str, int] = {}
        self._index: Sigs | None = None
        self._index_ok = {s: False for s in STAGES}
        if index is None or index.num_rows == 0:
            return
        meta = json.loads((index.schema.metadata or {}).get(INDEX_META_KEY, b"{}"))
        fps = meta.get("fingerprints", {})
        sig = Sigs(index.num_rows, self.num_perm, self.dim)
        sig.ids = index.column("chunk_id").to_pylist()
        sig.length = index.column("length").to_numpy(zero_copy_only=False).astype(np.int64)
        if "text_hash" in index.column_names:
            sig.text_hash = index.column("text_hash").to_numpy(zero_copy_only=False).astype(np.uint64)
        else:  # an index without text hashes cannot prove a text is unchanged: reuse nothing
            fps = {}
        for stage in self.stages:
            usable = stage.fingerprint is not None and fps.get(stage.name) == stage.fingerprint
            self._index_ok[stage.name] = usable and stage.load(index, sig)
        self._index = sig
        self._index_kept = index.column("kept").to_numpy(zero_copy_only=False).astype(bool)
        self._cache_pos = {cid: i for i, cid in enumerate(sig.ids)}

    def index(self) -> pa.Table:
        """Signatures of every chunk seen (plus prior index rows), to persist for the next run."""
        if self._mode == "adding":
            raise RuntimeError("call resolve() before index(): the index records which chunks were kept")
        cur = Sigs.concat(self._parts, self.num_perm, self.dim)
        kept = np.concatenate(self._kept_flags) if self._kept_flags else np.zeros(0, bool)
        parts, kept_parts = [cur], [kept]
        if self._index is not None:
            seen = set(cur.ids)
            rest = np.array([cid not in seen for cid in self._index.ids], dtype=bool)
            if rest.any():
                parts.append(self._index.subset(np.flatnonzero(rest)))
                kept_parts.append(self._index_kept[rest])
        allsig = Sigs.concat(parts, self.num_perm, self.dim)
        cols: dict[str, pa.Array] = {
            "chunk_id": pa.array(allsig.ids, pa.string()),
            "length": pa.array(allsig.length, pa.int64()),
            "text_hash": pa.array(allsig.text_hash, pa.uint64()),
            "kept": pa.array(np.concatenate(kept_parts), pa.bool_()),
            **{stage.name: stage.column(allsig) for stage in self.stages},
        }
        meta = {"fingerprints": self.fingerprints, "num_perm": self.num_perm, "version": 1}
        return pa.table(cols).replace_schema_metadata({INDEX_META_KEY: json.dumps(meta).encode()})

    # -- signatures ----------------------------------------------------------

    def _signatures(self, table: pa.Table) -> Sigs:
        """A batch's signatures: each active stage's, loaded from the index where its text is unchanged."""
        n = table.num_rows
        texts = [t or "" for t in table.column("text").to_pylist()]
        sig = Sigs(n, self.num_perm, self.dim)
        sig.ids = table.column("chunk_id").to_pylist()
        sig.length = np.fromiter((len(t) for t in texts), np.int64, count=n)
        sig.text_hash = np.fromiter((text_hash(t) for t in texts), np.uint64, count=n)
        pos, cached = self._stored(sig)
        langs = Langs(texts)
        for stage in self.active:
            hit = cached & self._index_ok[stage.name]
            if hit.any():
                sig.copy_rows(stage.name, np.flatnonzero(hit), self._index, pos[hit])
                self.loaded[stage.name] += int(hit.sum())
            todo = np.flatnonzero(~hit)
            if len(todo):
                self.computed[stage.name] += len(todo)
                stage.sign(sig, todo, texts, langs)
        return sig

    def _stored(self, sig: Sigs) -> tuple[np.ndarray, np.ndarray]:
        """(row in the index or -1, whether that row holds the same text) of each chunk of a batch."""
        pos = np.array([self._cache_pos.get(cid, -1) for cid in sig.ids], dtype=np.int64)
        cached = pos >= 0
        if cached.any():  # same chunk id but a changed text (another clean config): sign it anew
            cached[cached] = self._index.text_hash[pos[cached]] == sig.text_hash[cached]
        return pos, cached

    def stats(self) -> dict[str, Any]:
        return {
            "signatures_computed": dict(self.computed),
            "signatures_loaded": dict(self.loaded),
            "chunks": sum(len(p.ids) for p in self._parts),
            "clusters": dict(self._clusters),
            "rejected_by_reason": dict(self._rejected),
            "minhash_bands": [self.bands, self.rows] if self.cfg.minhash else None,
        }

    # -- two passes ------------------------------------------------------------

    def add_batch(self, table: pa.Table) -> None:
        """Pass 1: sign a batch (or load its signatures from the index)."""
        self._open()
        if table.num_rows:
            self._parts.append(self._signatures(table))

    def resolve(self) -> tuple[set[str], list[Reject]]:
        """Cluster everything added; returns (chunk ids to keep, rejects). Call once, after every add_batch."""
        if self._mode == "resolved":
            raise RuntimeError("resolve() was already called")
        self._mode = "resolved"
        cur = Sigs.concat(self._parts, self.num_perm, self.dim)
        n_cur = len(cur.ids)
        prior = np.zeros(0, np.int64)
        members = cur
        if self._index is not None:
            seen = set(cur.ids)
            prior = np.flatnonzero(self._index_kept & np.array([c not in seen for c in self._index.ids], bool))
            if len(prior):
                members = Sigs.concat([cur, self._index.subset(prior)], self.num_perm, self.dim)
        n = len(members.ids)
        is_prior = np.arange(n) >= n_cur
        order = np.where(is_prior, -1, np.arange(n))  # priors first
        alive = np.ones(n, bool)
        rejects: list[Reject] = []
        for stage in self.active:
            idx = np.flatnonzero(alive & getattr(members, f"has_{stage.name}"))
            a, b = _pairs(stage, members, idx)
            if not len(a):
                continue
            labels = components(len(idx), a, b)
            rep_of, dup = self._representatives(labels, idx, members, is_prior, order)
            self._clusters[stage.name] += int(len(np.unique(labels[dup]))) if dup.any() else 0
            for local in np.flatnonzero(dup):
                g, r = idx[local], rep_of[local]
                alive[g] = False
                if is_prior[g]:
                    continue
                rejects.append(self._reject(stage, members, g, r))
        self._kept_flags = [alive[:n_cur]]
        keep = {members.ids[i] for i in np.flatnonzero(alive[:n_cur])}
        rejected = {r.id for r in rejects}
        self._resolved = (keep, rejected)
        return keep, rejects

    def apply_batch(self, table: pa.Table) -> pa.Table:
        """Pass 2: the batch without the chunks `resolve()` rejected."""
        if self._resolved is None:
            raise RuntimeError("call resolve() before apply_batch()")
        rejected = self._resolved[1]
        mask = [cid not in rejected for cid in table.column("chunk_id").to_pylist()]
        return table.filter(pa.array(mask, pa.bool_()))

    def _representatives(self, labels: np.ndarray, idx: np.ndarray, m: Sigs, is_prior: np.ndarray,
                         order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each member (local index): its cluster's kept member (global index) and whether it is a duplicate."""
        g_prior = (~is_prior[idx]).astype(np.int64)  # 0 sorts first: priors win
        g_order = order[idx]
        length_key = -m.length[idx] if self.cfg.keep == "longest" else np.zeros(len(idx), np.int64)
        srt = np.lexsort((g_order, length_key, g_prior, labels))
        lab_sorted = labels[srt]
        first = np.concatenate([[True], lab_sorted[1:] != lab_sorted[:-1]])
        rep_local = np.empty(labels.max() + 1, np.int64)
        rep_local[lab_sorted[first]] = srt[first]
        rep_of = idx[rep_local[labels]]
        dup = rep_of != idx
        return rep_of, dup

    def _reject(self, stage: Stage, m: Sigs, g: int, r: int) -> Reject:
        kept_id = m.ids[r]
        detail = {"stage": stage.name, "cluster": f"{stage.name}:{kept_id}", "kept_id": kept_id, **stage.detail(m, g, r)}
        self._rejected[stage.reason] += 1
        return Reject(m.ids[g], stage.reason, stage.message(kept_id), detail)

    def _open(self) -> None:
        """Pass 1 is under way: index() must wait for resolve(), and nothing is added after it."""
        if self._mode == "resolved":
            raise RuntimeError("add_batch after resolve(): start a new Deduper (pass it this one's index())")
        self._mode = "adding"


def _pairs(stage: Stage, m: Sigs, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A stage's duplicate pairs (local indices) among the chunks m[idx]; none among fewer than two."""
    if len(idx) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return stage.pairs(m, idx)
