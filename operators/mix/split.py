"""Train/eval split, 9:1 per source, by a seeded hash of each sample's group.

A group is a chunk for domain rows (every question of a chunk and all their
paraphrases), so an eval question never has a paraphrase of itself in train.
Each group's side depends only on the seed, its source and its own id, so
rows added later (new documents, new questions) never move the ones already
split. One exception keeps documents covered: a document with at least
`min_doc_chunks` chunks that drew no eval chunk gets its lowest-hash chunk
moved to eval (this choice can change only when chunks are added to that
same document).

Facts (the `facts` strategy) split by fact, not by chunk: a fact drawn for eval
puts its held-out phrasing (`meta.heldout`) in eval and trains every other
phrasing, so the eval asks about a fact the model was taught, in words it was
not (Physics of LMs 3.1 measures extraction this way). When a run has facts,
its other domain rows all train: the eval is the held-out phrasings.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from infuse.operators.mix.sample import Sample, unit_hash


@dataclass
class SplitStats:
    promoted: list[tuple[str, str]] = field(default_factory=list)  # (doc_id, chunk_id) moved to eval
    docs_with_eval: int = 0
    docs_eligible: int = 0  # documents with at least min_doc_chunks chunks
    facts: int = 0  # a run with facts: the facts, and those with a held-out phrasing in eval
    facts_in_eval: int = 0


def group_hash(seed: int, s: Sample) -> float:
    return unit_hash(seed, "split", s.source, s.group)


def split_facts(samples: list[Sample], eval_ratio: float, seed: int, stats: SplitStats) -> bool:
    """Set `split` on the domain rows of a run with facts (in place); False when it has none."""
    domain = [s for s in samples if s.kind == "domain"]
    if not any(s.fact.get("fact_id") for s in domain):
        return False
    facts, in_eval = set(), set()
    for s in domain:
        f = s.fact
        drawn = bool(f.get("fact_id")) and unit_hash(seed, "split", s.source, f"fact:{f['fact_id']}") < eval_ratio
        s.split = "eval" if drawn and f.get("heldout") else "train"
        if f.get("fact_id"):
            facts.add(f["fact_id"])
        if s.split == "eval":
            in_eval.add(f["fact_id"])
    stats.facts, stats.facts_in_eval = len(facts), len(in_eval)
    return True


def assign_splits(samples: list[Sample], eval_ratio: float, seed: int, min_doc_chunks: int) -> SplitStats:
    """Set `split` on every sample (in place)."""
    stats = SplitStats()
    if split_facts(samples, eval_ratio, seed, stats):
        assign_splits([s for s in samples if s.kind != "domain"], eval_ratio, seed, min_doc_chunks)
        return stats
    hashes: dict[tuple[str, str], float] = {}
    for s in samples:
        h = hashes.setdefault((s.source, s.group), group_hash(seed, s))
        s.split = "eval" if h < eval_ratio else "train"
    if eval_ratio <= 0:
        return stats
    docs: dict[tuple[str, str], dict[str, float]] = {}  # (source, doc) -> chunk group -> hash
    members: dict[tuple[str, str], list[Sample]] = {}  # (source, chunk) -> its samples
    for s in samples:
        if s.doc_id and s.chunk_id:
            docs.setdefault((s.source, s.doc_id), {})[s.chunk_id] = hashes[(s.source, s.group)]
            members.setdefault((s.source, s.chunk_id), []).append(s)
    for (source, doc), chunks in sorted(docs.items()):
        has_eval = any(h < eval_ratio for h in chunks.values())
        if len(chunks) >= min_doc_chunks:
            stats.docs_eligible += 1
            if not has_eval:
                chunk = min(chunks, key=lambda c: (chunks[c], c))
                for s in members[(source, chunk)]:
                    s.split = "eval"
                stats.promoted.append((doc, chunk))
                has_eval = True
        stats.docs_with_eval += has_eval
    return stats
