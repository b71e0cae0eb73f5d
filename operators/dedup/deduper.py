"""Deduper: exact, SimHash, MinHash-LSH and semantic (embedding) stages over a stream of chunk batches.

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

from infuse.operators.common.base import Reject, stable_hash
from infuse.operators.common.lang import detect_lang
from infuse.operators.dedup import semantic
from infuse.operators.dedup.config import DedupConfig
from infuse.operators.dedup.groups import components, pairs_from_keys
from infuse.operators.dedup.minhash import MinhashSigner, band_keys, jaccard, lsh_params
from infuse.operators.dedup.simhash import SimhashHasher, near_pairs, popcount
from infuse.operators.dedup.text import exact_key, shingles

INDEX_META_KEY = b"infuse_dedup"
STAGES = ("exact", "simhash", "minhash", "semantic")
REASONS = {"exact": "exact_duplicate", "simhash": "near_duplicate_simhash", "minhash": "near_duplicate_minhash",
           "semantic": "near_duplicate_semantic"}
EXACT_VERSION = "nfkc-casefold-nopunct-ws-blake2b8-v1"
EMBED_VERSION = "all-MiniLM-L6-v2-meanpool-l2-256tok-f16-v1"  # what makes a stored embedding reusable
EMBED_DIM = 384
_COLUMNS = ("length", "text_hash", "exact", "has_exact", "simhash", "has_simhash", "minhash", "has_minhash",
            "semantic", "has_semantic")


def text_hash(text: str) -> int:
    """64-bit hash of the raw text: the key that makes a stored signature valid."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


class _Sigs:
    """Signatures of a set of chunks, column-wise."""

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
    def concat(parts: list["_Sigs"], num_perm: int, dim: int = 0) -> "_Sigs":
        out = _Sigs(0, num_perm, dim)
        if not parts:
            return out
        for name in _COLUMNS:
            setattr(out, name, np.concatenate([getattr(p, name) for p in parts]))
        out.ids = [i for p in parts for i in p.ids]
        return out


class Deduper:
    def __init__(self, cfg: DedupConfig | None = None, index: pa.Table | None = None) -> None:
        self.cfg = cfg or DedupConfig.default()
        mh = self.cfg.minhash
        self.num_perm = mh.num_perm if mh else 0
        self.simhasher = SimhashHasher(self.cfg.simhash) if self.cfg.simhash else None
        self.signer = MinhashSigner(mh.num_perm, mh.seed) if mh else None
        if mh:
            self.bands, self.rows = (mh.bands, mh.rows) if mh.bands else lsh_params(mh.threshold, mh.num_perm)
        sem = self.cfg.semantic
        self.dim = EMBED_DIM if sem else 0
        self.fingerprints = {
            "exact": EXACT_VERSION if self.cfg.exact else None,
            "simhash": stable_hash(self.cfg.simhash.model_dump()) if self.cfg.simhash else None,
            "minhash": stable_hash(mh.model_dump(exclude={"threshold", "bands", "rows", "verify"})) if mh else None,
            "semantic": stable_hash({"model": EMBED_VERSION, "langs": sorted(sem.langs)}) if sem else None,
        }
        self.computed = {s: 0 for s in STAGES}
        self.loaded = {s: 0 for s in STAGES}
        self._parts: list[_Sigs] = []
        self._kept_flags: list[np.ndarray] = []
        self._mode: str | None = None
        self._resolved: tuple[set[str], set[str]] | None = None
        self._clusters = {s: 0 for s in STAGES}
        self._rejected = {r: 0 for r in REASONS.values()}
        self._load_index(index)

    # -- index ---------------------------------------------------------------

    def _load_index(self, index: pa.Table | None) -> None:
        self._cache_pos: dict[str, int] = {}
        self._index = None
        self._index_ok = {s: False for s in STAGES}
        if index is None or index.num_rows == 0:
            return
        meta = json.loads((index.schema.metadata or {}).get(INDEX_META_KEY, b"{}"))
        fps = meta.get("fingerprints", {})
        self._index_ok = {s: self.fingerprints[s] is not None and fps.get(s) == self.fingerprints[s] for s in STAGES}
        n = index.num_rows
        sig = _Sigs(n, self.num_perm, self.dim)
        sig.ids = index.column("chunk_id").to_pylist()
        sig.length = index.column("length").to_numpy(zero_copy_only=False).astype(np.int64)
        if "text_hash" in index.column_names:
            sig.text_hash = index.column("text_hash").to_numpy(zero_copy_only=False).astype(np.uint64)
        else:  # an index without text hashes cannot prove a text is unchanged: reuse nothing
            self._index_ok = {s: False for s in STAGES}
        for s in ("exact", "simhash"):
            col = index.column(s)
            if self._index_ok[s]:
                setattr(sig, s, col.fill_null(0).to_numpy(zero_copy_only=False).astype(np.uint64))
                setattr(sig, f"has_{s}", col.is_valid().to_numpy(zero_copy_only=False))
        if self._index_ok["minhash"]:
            col = index.column("minhash").combine_chunks()
            if col.type.list_size != self.num_perm:
                self._index_ok["minhash"] = False
            else:
                flat = col.values.to_numpy(zero_copy_only=False).astype(np.uint32)
                sig.minhash = flat.reshape(n, self.num_perm)
                sig.has_minhash = col.is_valid().to_numpy(zero_copy_only=False)
        if self._index_ok["semantic"] and "semantic" in index.column_names:
            col = index.column("semantic").combine_chunks()
            sig.semantic = col.values.to_numpy(zero_copy_only=False).astype(np.float16).reshape(n, self.dim)
            sig.has_semantic = col.is_valid().to_numpy(zero_copy_only=False)
        else:
            self._index_ok["semantic"] = False
        self._index = sig
        self._index_kept = index.column("kept").to_numpy(zero_copy_only=False).astype(bool)
        self._cache_pos = {cid: i for i, cid in enumerate(sig.ids)}

    def index(self) -> pa.Table:
        """Signatures of every chunk seen (plus prior index rows), to persist for the next run."""
        cur = _Sigs.concat(self._parts, self.num_perm, self.dim)
        if self._mode == "adding":
            raise RuntimeError("call resolve() before index(): the index records which chunks were kept")
        kept = np.concatenate(self._kept_flags) if self._kept_flags else np.zeros(0, bool)
        parts, kept_parts = [cur], [kept]
        if self._index is not None:
            seen = set(cur.ids)
            rest = np.array([cid not in seen for cid in self._index.ids], dtype=bool)
            if rest.any():
                parts.append(_subset(self._index, np.flatnonzero(rest)))
                kept_parts.append(self._index_kept[rest])
        allsig = _Sigs.concat(parts, self.num_perm, self.dim)
        kept = np.concatenate(kept_parts)
        cols: dict[str, pa.Array] = {
            "chunk_id": pa.array(allsig.ids, pa.string()),
            "length": pa.array(allsig.length, pa.int64()),
            "text_hash": pa.array(allsig.text_hash, pa.uint64()),
            "kept": pa.array(kept, pa.bool_()),
            "exact": pa.array(allsig.exact, pa.uint64(), mask=~allsig.has_exact),
            "simhash": pa.array(allsig.simhash, pa.uint64(), mask=~allsig.has_simhash),
        }
        p = max(self.num_perm, 1)
        flat = allsig.minhash.reshape(-1) if self.num_perm else np.zeros(len(allsig.ids), np.uint32)
        mh = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.uint32()), p,
                                               mask=pa.array(~allsig.has_minhash))
        cols["minhash"] = mh
        d = max(self.dim, 1)
        emb = allsig.semantic.reshape(-1) if self.dim else np.zeros(len(allsig.ids), np.float16)
        cols["semantic"] = pa.FixedSizeListArray.from_arrays(pa.array(emb, pa.float16()), d,
                                                             mask=pa.array(~allsig.has_semantic))
        meta = {"fingerprints": self.fingerprints, "num_perm": self.num_perm, "version": 1}
        return pa.table(cols).replace_schema_metadata({INDEX_META_KEY: json.dumps(meta).encode()})

    # -- signatures ----------------------------------------------------------

    def _signatures(self, table: pa.Table) -> _Sigs:
        n = table.num_rows
        ids = table.column("chunk_id").to_pylist()
        texts = [t or "" for t in table.column("text").to_pylist()]
        sig = _Sigs(n, self.num_perm, self.dim)
        sig.ids = ids
        sig.length = np.fromiter((len(t) for t in texts), np.int64, count=n)
        sig.text_hash = np.fromiter((text_hash(t) for t in texts), np.uint64, count=n)
        pos = np.array([self._cache_pos.get(cid, -1) for cid in ids], dtype=np.int64)
        cached = pos >= 0
        if cached.any():  # same chunk id but a changed text (another clean config): sign it anew
            cached[cached] = self._index.text_hash[pos[cached]] == sig.text_hash[cached]
        langs: list[str] | None = None
        for stage in STAGES:
            if self.fingerprints[stage] is None:
                continue
            hit = cached & self._index_ok[stage]
            if hit.any():
                src = self._index
                setattr_rows(sig, stage, np.flatnonzero(hit), src, pos[hit])
                self.loaded[stage] += int(hit.sum())
            todo = np.flatnonzero(~hit)
            if not len(todo):
                continue
            self.computed[stage] += len(todo)
            sub = [texts[i] for i in todo]
            if stage == "exact":
                sig.exact[todo] = np.fromiter((exact_key(t) for t in sub), np.uint64, count=len(sub))
                sig.has_exact[todo] = True
            elif stage == "simhash":
                if langs is None:
                    langs = [detect_lang(t) for t in texts]
                h = self.simhasher.hash(sub, [langs[i] for i in todo])
                sig.simhash[todo] = h
                sig.has_simhash[todo] = h != 0  # 0: fewer tokens than the window, no signature
            elif stage == "minhash":
                docs = [shingles(t, self.cfg.minhash.ngram) for t in sub]
                sig.minhash[todo] = self.signer.sign(docs)
                sig.has_minhash[todo] = np.array([bool(d) for d in docs], dtype=bool)
            else:  # semantic: only the languages the embedding model knows
                if langs is None:
                    langs = [detect_lang(t) for t in texts]
                rows = np.array([i for i in todo if langs[i] in self.cfg.semantic.langs and texts[i].strip()],
                                dtype=np.int64)
                if len(rows):
                    sig.semantic[rows] = semantic.embed([texts[i] for i in rows])
                    sig.has_semantic[rows] = True
        return sig

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
        cur = _Sigs.concat(self._parts, self.num_perm, self.dim)
        n_cur = len(cur.ids)
        prior = np.zeros(0, np.int64)
        members = cur
        if self._index is not None:
            seen = set(cur.ids)
            prior = np.flatnonzero(self._index_kept & np.array([c not in seen for c in self._index.ids], bool))
            if len(prior):
                members = _Sigs.concat([cur, _subset(self._index, prior)], self.num_perm, self.dim)
        n = len(members.ids)
        is_prior = np.arange(n) >= n_cur
        order = np.where(is_prior, -1, np.arange(n))  # priors first
        alive = np.ones(n, bool)
        rejects: list[Reject] = []
        for stage in STAGES:
            if self.fingerprints[stage] is None:
                continue
            idx = np.flatnonzero(alive & getattr(members, f"has_{stage}"))
            a, b = self._stage_pairs(stage, members, idx)
            if not len(a):
                continue
            labels = components(len(idx), a, b)
            rep_of, dup = self._representatives(labels, idx, members, is_prior, order)
            self._clusters[stage] += int(len(np.unique(labels[dup]))) if dup.any() else 0
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

    def _stage_pairs(self, stage: str, m: _Sigs, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(idx) < 2:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        if stage == "exact":
            return pairs_from_keys(m.exact[idx])
        if stage == "simhash":
            c = self.cfg.simhash
            return near_pairs(m.simhash[idx], c.num_blocks, c.hamming_distance)
        if stage == "semantic":
            c = self.cfg.semantic
            k = c.clusters or -(-len(idx) // c.cluster_size)
            return semantic.near_pairs(m.semantic[idx], c.threshold, k, c.seed)
        sig = m.minhash[idx]
        keys = band_keys(sig, self.bands, self.rows)
        a_parts, b_parts = [], []
        for band in range(self.bands):
            a, b = pairs_from_keys(keys[:, band])
            a_parts.append(a)
            b_parts.append(b)
        a, b = np.concatenate(a_parts), np.concatenate(b_parts)
        if len(a):
            code = np.unique(np.minimum(a, b) * len(idx) + np.maximum(a, b))
            a, b = code // len(idx), code % len(idx)
            if self.cfg.minhash.verify:
                ok = jaccard(sig, a, b) >= self.cfg.minhash.threshold
                a, b = a[ok], b[ok]
        return a, b

    def _representatives(self, labels: np.ndarray, idx: np.ndarray, m: _Sigs, is_prior: np.ndarray,
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

    def _reject(self, stage: str, m: _Sigs, g: int, r: int) -> Reject:
        kept_id = m.ids[r]
        detail: dict[str, Any] = {"stage": stage, "cluster": f"{stage}:{kept_id}", "kept_id": kept_id}
        if stage == "simhash":
            detail["hamming_distance"] = int(popcount(np.array([m.simhash[g] ^ m.simhash[r]], np.uint64))[0])
        elif stage == "minhash":
            detail["jaccard"] = float((m.minhash[g] == m.minhash[r]).mean())
        elif stage == "semantic":
            detail["cosine"] = round(float(m.semantic[g].astype(np.float32) @ m.semantic[r].astype(np.float32)), 4)
        self._rejected[REASONS[stage]] += 1
        what = "same normalised text as" if stage == "exact" else f"near duplicate ({stage}) of"
        return Reject(m.ids[g], REASONS[stage], f"{what} {kept_id}", detail)

    def _open(self) -> None:
        """Pass 1 is under way: index() must wait for resolve(), and nothing is added after it."""
        if self._mode == "resolved":
            raise RuntimeError("add_batch after resolve(): start a new Deduper (pass it this one's index())")
        self._mode = "adding"


def _subset(s: _Sigs, rows: np.ndarray) -> _Sigs:
    out = _Sigs(0, s.num_perm, s.dim)
    out.ids = [s.ids[i] for i in rows]
    for name in _COLUMNS:
        setattr(out, name, getattr(s, name)[rows])
    return out


def setattr_rows(dst: _Sigs, stage: str, rows: np.ndarray, src: _Sigs, src_rows: np.ndarray) -> None:
    """Copy one stage's signatures (and presence flags) of src rows into dst rows."""
    getattr(dst, stage)[rows] = getattr(src, stage)[src_rows]
    getattr(dst, f"has_{stage}")[rows] = getattr(src, f"has_{stage}")[src_rows]
