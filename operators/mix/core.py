"""The mix itself: domain QA + general sources -> deduplicated, ratio-planned train and eval rows.

Order of work, and why:
1. read every source (bad rows become rejects);
2. dedup across sources, domain first, so general data never displaces domain data;
3. split each source 9:1 by group hash, before any sampling, so a repeated row
   can never sit on both sides and adding rows never moves a row's side;
4. plan and take rows per source for the ratio (train rows decide it; eval
   rows follow in proportion and are never repeated).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from infuse.operators.common.base import Reject
from infuse.operators.mix.config import DOMAIN, IdentityValues, MixConfig
from infuse.operators.mix.dedup import dedup
from infuse.operators.mix.identity import Identity
from infuse.operators.mix.load import MixInputError, load_source
from infuse.operators.mix.ratio import SourcePlan, general_target, plan_targets, select
from infuse.operators.mix.sample import RowError, Sample, check_messages, unit_hash
from infuse.operators.mix.split import SplitStats, assign_splits


@dataclass
class SourceStats:
    """One row of the mix report."""

    source: str
    kind: str
    formats: dict[str, int] = field(default_factory=dict)
    rows_read: int = 0
    malformed: int = 0
    duplicates: int = 0
    plan: SourcePlan | None = None


@dataclass
class MixResult:
    train: list[Sample]
    eval: list[Sample]
    rejects: list[Reject]
    sources: list[SourceStats]
    split: SplitStats
    general_wanted: int
    ratio: float

    @property
    def domain_share(self) -> float:
        """Share of domain-source rows in train: what domain_ratio asks for."""
        return sum(s.source == DOMAIN for s in self.train) / len(self.train) if self.train else 0.0


def domain_samples(rows: list[dict[str, Any]]) -> tuple[list[Sample], list[Reject]]:
    """QA rows (synthesize / qa_filter / select) as samples; a malformed one is a reject."""
    out, rejects = [], []
    for i, r in enumerate(rows):
        sid = str(r.get("sample_id") or f"{DOMAIN}#{i}")
        try:
            messages = check_messages(r.get("messages"))
        except RowError as e:
            rejects.append(Reject(sid, e.reason, e.message, {"source": DOMAIN}))
            continue
        strategy = str(r.get("strategy") or "")
        kind = "identity" if strategy.split("+")[0] == "identity" else "domain"
        out.append(Sample(sid, messages, DOMAIN, kind, sid, doc_id=str(r.get("doc_id") or ""),
                          chunk_id=str(r.get("chunk_id") or ""), span_start=r.get("span_start"),
                          span_end=r.get("span_end"), strategy=strategy, lang=str(r.get("lang") or ""),
                          meta=str(r.get("meta") or "")))
    return out, rejects


def _order(seed: int, samples: list[Sample]) -> list[Sample]:
    """A seeded interleaving of all sources (stable: by each row's own hash)."""
    return sorted(samples, key=lambda s: (unit_hash(seed, "order", s.sample_id), s.sample_id))


def mix(qa_rows: list[dict[str, Any]], cfg: MixConfig, identity_fallback: IdentityValues | None = None) -> MixResult:
    identity = Identity.of(cfg.identity, identity_fallback)
    domain, rejects = domain_samples(qa_rows)
    if not domain:
        raise MixInputError(f"mix: the qa input has no usable rows ({len(qa_rows)} read); there is nothing to mix")
    stats = {DOMAIN: SourceStats(DOMAIN, "domain", {"qa": len(domain)}, len(qa_rows), len(rejects))}
    ordered = list(domain)
    for src in cfg.general:
        loaded = load_source(src, identity)
        name = src.source_name
        stats[name] = SourceStats(name, src.row_kind, loaded.formats, loaded.rows_read, len(loaded.rejects))
        rejects += loaded.rejects
        ordered += loaded.samples
    kept, dup_rejects = dedup(ordered)
    rejects += dup_rejects
    for r in dup_rejects:
        stats[r.detail["source"]].duplicates += 1
    split = assign_splits(kept, cfg.eval_ratio, cfg.seed, cfg.min_doc_chunks)

    by_source: dict[str, tuple[list[Sample], list[Sample]]] = {n: ([], []) for n in stats}
    for s in kept:
        by_source[s.source][0 if s.split == "train" else 1].append(s)
    d_train, d_eval = by_source[DOMAIN]
    stats[DOMAIN].plan = SourcePlan(DOMAIN, "domain", 1.0, len(d_train), len(d_eval), len(d_train), len(d_train),
                                    0, len(d_eval))
    wanted = general_target(len(d_train), cfg.domain_ratio)
    general = [(s.source_name, s.weight, len(by_source[s.source_name][0])) for s in cfg.general]
    targets, capped = plan_targets(wanted, general, cfg.max_upsample)
    train, eval_ = list(d_train), list(d_eval)
    for src in cfg.general:
        name = src.source_name
        t_rows, e_rows = by_source[name]
        plan = SourcePlan(name, src.row_kind, src.weight, len(t_rows), len(e_rows), targets[name],
                          capped=name in capped)
        why = f"domain_ratio {cfg.domain_ratio}, weight {src.weight}: {targets[name]} train rows wanted"
        taken_t, taken_e, dropped = select(plan, t_rows, e_rows, cfg.seed, why)
        train += taken_t
        eval_ += taken_e
        rejects += dropped
        stats[name].plan = plan
    return MixResult(_order(cfg.seed, train), _order(cfg.seed, eval_), rejects, list(stats.values()), split,
                     wanted, cfg.domain_ratio)
