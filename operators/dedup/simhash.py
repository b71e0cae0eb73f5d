"""SimHash via data-juicer's document_simhash_deduplicator, clustered by our block index.

data-juicer's `process()` needs the whole dataset at once; we only borrow
its `compute_hash` (tokenisation + simhash-pybind) and find pairs within the
Hamming distance with the classic block trick: split the 64 bits into
num_blocks blocks; two hashes within distance k agree on at least
num_blocks − k blocks, so they share a key in one of C(num_blocks, k)
"blocks kept" tables.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np

from infuse.operators.dedup.config import SimhashConfig
from infuse.operators.dedup.groups import pairs_from_keys


def block_masks(num_blocks: int, distance: int) -> list[np.uint64]:
    bounds = np.linspace(0, 64, num_blocks + 1).round().astype(int)
    blocks = [sum(1 << b for b in range(bounds[i], bounds[i + 1])) for i in range(num_blocks)]
    return [np.uint64(sum(blocks[i] for i in combo)) for combo in combinations(range(num_blocks), num_blocks - distance)]


def popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x) if hasattr(np, "bitwise_count") else np.array([bin(int(v)).count("1") for v in x])


class SimhashHasher:
    """data-juicer's SimHash per chunk; `auto` picks character shingles for CJK-dominant chunks."""

    def __init__(self, cfg: SimhashConfig) -> None:
        from infuse.operators.common import dj

        dj.ensure_loaded()
        self.cfg = cfg
        base = dict(window_size=cfg.window_size, lowercase=cfg.lowercase, ignore_pattern=cfg.ignore_pattern,
                    num_blocks=cfg.num_blocks, hamming_distance=cfg.hamming_distance)
        modes = ("space", "character") if cfg.tokenization == "auto" else (cfg.tokenization,)
        self.ops = {m: dj.make_op("document_simhash_deduplicator", {**base, "tokenization": m}) for m in modes}

    def hash(self, texts: list[str], langs: list[str]) -> np.ndarray:
        from data_juicer.utils.constant import HashKeys

        out = np.zeros(len(texts), dtype=np.uint64)
        for i, (t, lang) in enumerate(zip(texts, langs)):
            mode = ("character" if lang == "zh" else "space") if self.cfg.tokenization == "auto" else self.cfg.tokenization
            op = self.ops[mode]
            sample = type(op).compute_hash(op, {op.text_key: t})  # the op's own hashing, unwrapped
            out[i] = np.uint64(int(sample[HashKeys.simhash]))
        return out


def near_pairs(hashes: np.ndarray, num_blocks: int, distance: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs with Hamming distance <= distance (identical hashes included)."""
    uniq, inverse = np.unique(hashes, return_inverse=True)
    a_parts = []
    b_parts = []
    # identical hashes: pair each member with the first of its value
    first = np.full(len(uniq), -1, dtype=np.int64)
    idx = np.arange(len(hashes))
    order = np.argsort(inverse, kind="stable")
    inv_sorted = inverse[order]
    is_first = np.concatenate([[True], inv_sorted[1:] != inv_sorted[:-1]])
    first[inv_sorted[is_first]] = order[is_first]
    dup = first[inverse] != idx
    a_parts.append(first[inverse][dup])
    b_parts.append(idx[dup])
    # near hashes among distinct values
    ua, ub = [], []
    for mask in block_masks(num_blocks, distance):
        pa_, pb_ = pairs_from_keys(uniq & mask)
        if len(pa_):
            ok = popcount(uniq[pa_] ^ uniq[pb_]) <= distance
            ua.append(pa_[ok])
            ub.append(pb_[ok])
    if ua:
        ua_all, ub_all = np.concatenate(ua), np.concatenate(ub)
        a_parts.append(first[ua_all])
        b_parts.append(first[ub_all])
    return np.concatenate(a_parts).astype(np.int64), np.concatenate(b_parts).astype(np.int64)
