"""dedup: near-duplicate questions by MinHash-LSH over the batch; the first of a group is kept.

What makes two samples the same is their question (RAFT shows documents around
it: meta.question). A sample whose question only names a topic (meta.topic: a
rewording, a summary, a list of facts; or CPT text) shares that question by
design, so its answer is compared instead, among the answers of its strategy.
"""
from __future__ import annotations

from typing import Any

from infuse.operators.common.tokens import shingles
from infuse.operators.qa_filter.check import Check, CheckContext, Verdict
from infuse.operators.qa_filter.config import QAFilterConfig
from infuse.operators.qa_filter.sample import Drop, Sample


def dedup_key(s: Sample) -> tuple[str, str]:
    """(what is compared, its text): ("question", ...) or ("<strategy> answer", ...)."""
    if s.row.get("cpt_text") or s.meta.get("topic") is not None:
        return f"{s.strategy} answer", s.pairs[0][1]
    return "question", str(s.meta.get("question") or s.pairs[0][0])


class _Seen:
    """The kept samples' MinHashes, one LSH index per kind of key."""

    def __init__(self, cfg: QAFilterConfig) -> None:
        from datasketch import MinHash, MinHashLSH

        self.cfg = cfg
        self.new_minhash, self.new_lsh = MinHash, MinHashLSH
        self.lshs: dict[str, Any] = {}
        self.hashes: dict[str, Any] = {}
        self.order: dict[str, int] = {}

    def minhash(self, text: str) -> Any:
        mh = self.new_minhash(num_perm=self.cfg.num_perm)
        for sh in sorted(shingles(text, self.cfg.shingle)):
            mh.update(sh)
        return mh

    def verdict(self, s: Sample) -> Verdict:
        """A duplicate of a kept sample is dropped; any other sample is kept and remembered."""
        kind, key = dedup_key(s)
        if kind not in self.lshs:
            self.lshs[kind] = self.new_lsh(threshold=self.cfg.dedup_threshold, num_perm=self.cfg.num_perm)
        lsh, mh = self.lshs[kind], self.minhash(key)
        hits = [h for h in lsh.query(mh) if self.hashes[h].jaccard(mh) >= self.cfg.dedup_threshold]
        if hits:
            first = min(hits, key=self.order.__getitem__)
            return Drop("duplicate_question", f"near-duplicate of an earlier {kind}",
                        {"kept_sample_id": first, "jaccard": round(self.hashes[first].jaccard(mh), 3)})
        if s.sid not in self.hashes:
            lsh.insert(s.sid, mh)
            self.hashes[s.sid] = mh
            self.order[s.sid] = len(self.order)
        return None


class Duplicates(Check):
    name = "dedup"
    order = 30

    @classmethod
    def wanted(cls, ctx: CheckContext) -> bool:
        return ctx.cfg.dedup

    def verdicts(self, samples: list[Sample]) -> list[Verdict]:
        seen = _Seen(self.cfg)
        return [seen.verdict(s) for s in samples]
