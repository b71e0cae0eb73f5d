"""The dedup stages, one small class each, in the order they run: exact, simhash, minhash, semantic.

A stage says whether the config runs it (its `fingerprint`: what makes a stored
signature reusable, None when off), signs chunks into its column of Sigs, finds
the pairs of duplicates among signed chunks, and says what a duplicate's reject
records. It also reads and writes its column of the signature index. Deduper
does the rest the same way for every stage: reusing stored signatures,
clusters, representatives, rejects.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from infuse.operators.common.base import stable_hash
from infuse.operators.common.lang import detect_lang
from infuse.operators.dedup import semantic
from infuse.operators.dedup.config import DedupConfig
from infuse.operators.dedup.groups import pairs_from_keys
from infuse.operators.dedup.minhash import MinhashSigner, band_keys, jaccard, lsh_params
from infuse.operators.dedup.sigs import Sigs
from infuse.operators.dedup.simhash import SimhashHasher, near_pairs, popcount
from infuse.operators.dedup.text import exact_key, shingles

EXACT_VERSION = "nfkc-casefold-nopunct-ws-blake2b8-v1"
EMBED_VERSION = "all-MiniLM-L6-v2-meanpool-l2-256tok-f16-v1"  # what makes a stored embedding reusable
EMBED_DIM = 384
Pairs = tuple[np.ndarray, np.ndarray]


class Langs:
    """A batch's languages, detected for the whole batch on first use (only simhash `auto` and semantic ask)."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self._langs: list[str] | None = None

    def __getitem__(self, i: int) -> str:
        if self._langs is None:
            self._langs = [detect_lang(t) for t in self.texts]
        return self._langs[i]


class Stage:
    """Base of the stages; a scalar (uint64) signature column unless a stage says otherwise."""

    name: ClassVar[str] = ""
    reason: ClassVar[str] = ""

    def __init__(self, cfg: DedupConfig) -> None:
        self.cfg = cfg
        self.fingerprint: str | None = None

    def sign(self, sig: Sigs, todo: np.ndarray, texts: list[str], langs: Langs) -> None:
        """Sign the chunks at rows `todo` of the batch."""
        raise NotImplementedError

    def pairs(self, m: Sigs, idx: np.ndarray) -> Pairs:
        """Local index pairs (into idx) of duplicates among the signed chunks m[idx]."""
        raise NotImplementedError

    def detail(self, m: Sigs, g: int, r: int) -> dict[str, Any]:
        """What a duplicate's reject records about chunk g and its kept chunk r, besides the cluster."""
        return {}

    def message(self, kept_id: str) -> str:
        return f"near duplicate ({self.name}) of {kept_id}"

    def load(self, index: pa.Table, sig: Sigs) -> bool:
        """Read this stage's stored signatures into sig; False when they cannot be used."""
        col = index.column(self.name)
        setattr(sig, self.name, col.fill_null(0).to_numpy(zero_copy_only=False).astype(np.uint64))
        setattr(sig, f"has_{self.name}", col.is_valid().to_numpy(zero_copy_only=False))
        return True

    def column(self, sig: Sigs) -> pa.Array:
        """This stage's index column (null where a chunk has no signature)."""
        return pa.array(getattr(sig, self.name), pa.uint64(), mask=~getattr(sig, f"has_{self.name}"))


class Exact(Stage):
    """The same text once normalised (NFKC, casefold, no punctuation, collapsed whitespace)."""

    name, reason = "exact", "exact_duplicate"

    def __init__(self, cfg: DedupConfig) -> None:
        super().__init__(cfg)
        self.fingerprint = EXACT_VERSION if cfg.exact else None

    def sign(self, sig: Sigs, todo: np.ndarray, texts: list[str], langs: Langs) -> None:
        sig.exact[todo] = np.fromiter((exact_key(texts[i]) for i in todo), np.uint64, count=len(todo))
        sig.has_exact[todo] = True

    def pairs(self, m: Sigs, idx: np.ndarray) -> Pairs:
        return pairs_from_keys(m.exact[idx])

    def message(self, kept_id: str) -> str:
        return f"same normalised text as {kept_id}"


class Simhash(Stage):
    """data-juicer's SimHash within a Hamming distance."""

    name, reason = "simhash", "near_duplicate_simhash"

    def __init__(self, cfg: DedupConfig) -> None:
        super().__init__(cfg)
        if cfg.simhash:
            self.hasher = SimhashHasher(cfg.simhash)
            self.fingerprint = stable_hash(cfg.simhash.model_dump())

    def sign(self, sig: Sigs, todo: np.ndarray, texts: list[str], langs: Langs) -> None:
        h = self.hasher.hash([texts[i] for i in todo], [langs[i] for i in todo])
        sig.simhash[todo] = h
        sig.has_simhash[todo] = h != 0  # 0: fewer tokens than the window, no signature

    def pairs(self, m: Sigs, idx: np.ndarray) -> Pairs:
        return near_pairs(m.simhash[idx], self.cfg.simhash.num_blocks, self.cfg.simhash.hamming_distance)

    def detail(self, m: Sigs, g: int, r: int) -> dict[str, Any]:
        return {"hamming_distance": int(popcount(np.array([m.simhash[g] ^ m.simhash[r]], np.uint64))[0])}


class Minhash(Stage):
    """MinHash-LSH over shingles, candidate pairs verified by their estimated Jaccard."""

    name, reason = "minhash", "near_duplicate_minhash"

    def __init__(self, cfg: DedupConfig) -> None:
        super().__init__(cfg)
        self.bands: int | None = None
        self.rows: int | None = None
        mh = cfg.minhash
        if mh:
            self.signer = MinhashSigner(mh.num_perm, mh.seed)
            self.bands, self.rows = (mh.bands, mh.rows) if mh.bands else lsh_params(mh.threshold, mh.num_perm)
            self.fingerprint = stable_hash(mh.model_dump(exclude={"threshold", "bands", "rows", "verify"}))

    def sign(self, sig: Sigs, todo: np.ndarray, texts: list[str], langs: Langs) -> None:
        docs = [shingles(texts[i], self.cfg.minhash.ngram) for i in todo]
        sig.minhash[todo] = self.signer.sign(docs)
        sig.has_minhash[todo] = np.array([bool(d) for d in docs], dtype=bool)

    def pairs(self, m: Sigs, idx: np.ndarray) -> Pairs:
        sig = m.minhash[idx]
        keys = band_keys(sig, self.bands, self.rows)
        found = [pairs_from_keys(keys[:, band]) for band in range(self.bands)]
        a, b = np.concatenate([p[0] for p in found]), np.concatenate([p[1] for p in found])
        if not len(a):
            return a, b
        code = np.unique(np.minimum(a, b) * len(idx) + np.maximum(a, b))  # each pair once
        a, b = code // len(idx), code % len(idx)
        if self.cfg.minhash.verify:
            ok = jaccard(sig, a, b) >= self.cfg.minhash.threshold
            a, b = a[ok], b[ok]
        return a, b

    def detail(self, m: Sigs, g: int, r: int) -> dict[str, Any]:
        return {"jaccard": float((m.minhash[g] == m.minhash[r]).mean())}

    def load(self, index: pa.Table, sig: Sigs) -> bool:
        col = index.column(self.name).combine_chunks()
        if col.type.list_size != sig.num_perm:
            return False
        sig.minhash = col.values.to_numpy(zero_copy_only=False).astype(np.uint32).reshape(index.num_rows, sig.num_perm)
        sig.has_minhash = col.is_valid().to_numpy(zero_copy_only=False)
        return True

    def column(self, sig: Sigs) -> pa.Array:
        flat = sig.minhash.reshape(-1) if sig.num_perm else np.zeros(len(sig.ids), np.uint32)
        return pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.uint32()), max(sig.num_perm, 1),
                                                 mask=pa.array(~sig.has_minhash))


class Semantic(Stage):
    """MiniLM embeddings at a cosine threshold, compared within k-means clusters; its languages only."""

    name, reason = "semantic", "near_duplicate_semantic"

    def __init__(self, cfg: DedupConfig) -> None:
        super().__init__(cfg)
        if cfg.semantic:
            self.fingerprint = stable_hash({"model": EMBED_VERSION, "langs": sorted(cfg.semantic.langs)})

    def sign(self, sig: Sigs, todo: np.ndarray, texts: list[str], langs: Langs) -> None:
        known = self.cfg.semantic.langs  # only the languages the embedding model knows
        rows = np.array([i for i in todo if langs[i] in known and texts[i].strip()], dtype=np.int64)
        if len(rows):
            sig.semantic[rows] = semantic.embed([texts[i] for i in rows])
            sig.has_semantic[rows] = True

    def pairs(self, m: Sigs, idx: np.ndarray) -> Pairs:
        c = self.cfg.semantic
        k = c.clusters or -(-len(idx) // c.cluster_size)
        return semantic.near_pairs(m.semantic[idx], c.threshold, k, c.seed)

    def detail(self, m: Sigs, g: int, r: int) -> dict[str, Any]:
        return {"cosine": round(float(m.semantic[g].astype(np.float32) @ m.semantic[r].astype(np.float32)), 4)}

    def load(self, index: pa.Table, sig: Sigs) -> bool:
        if self.name not in index.column_names:
            return False
        col = index.column(self.name).combine_chunks()
        sig.semantic = col.values.to_numpy(zero_copy_only=False).astype(np.float16).reshape(index.num_rows, sig.dim)
        sig.has_semantic = col.is_valid().to_numpy(zero_copy_only=False)
        return True

    def column(self, sig: Sigs) -> pa.Array:
        emb = sig.semantic.reshape(-1) if sig.dim else np.zeros(len(sig.ids), np.float16)
        return pa.FixedSizeListArray.from_arrays(pa.array(emb, pa.float16()), max(sig.dim, 1),
                                                 mask=pa.array(~sig.has_semantic))


STAGE_TYPES: tuple[type[Stage], ...] = (Exact, Simhash, Minhash, Semantic)  # the order they run in
STAGES = tuple(s.name for s in STAGE_TYPES)
REASONS = {s.name: s.reason for s in STAGE_TYPES}
