"""Ratio planning: how many rows of each general source go into the mix, and which.

The domain QA is taken whole. Its train rows D fix the general train rows
wanted, G = D * (1 - domain_ratio) / domain_ratio, shared among the general
sources by weight. A source with fewer rows than its share is repeated, up to
`max_upsample` times its rows; what it still lacks goes to the others by
weight (water-filling), and if all are capped the domain share ends higher
than asked and the report says so. A source with more rows than its share is
down-sampled. Which rows are taken or repeated is decided by a seeded hash
rank, so adding rows to a file changes the selection only by the rows added.
Eval rows of a source are taken in the same proportion, never repeated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from infuse.operators.common.base import Reject
from infuse.operators.mix.sample import Sample, unit_hash


@dataclass
class SourcePlan:
    """Every decision about one source, for the report and the rejects."""

    source: str
    kind: str
    weight: float
    train_available: int = 0
    eval_available: int = 0
    target: int = 0  # train rows wanted, repeats included
    train_taken: int = 0  # distinct train rows taken
    copies: int = 0  # extra train rows made by repeating
    eval_taken: int = 0
    dropped: int = 0  # rows not taken (over_ratio rejects)
    capped: bool = False  # wanted more than max_upsample allows

    @property
    def train_rows(self) -> int:
        return self.train_taken + self.copies

    @property
    def decision(self) -> str:
        if self.kind == "domain":
            return "all taken"
        if self.train_available == 0:
            return "no rows"
        if self.copies:
            factor = self.train_rows / self.train_available
            return f"up-sampled x{factor:.2f}" + (" (capped)" if self.capped else "")
        if self.dropped:
            return f"down-sampled to {self.train_taken}/{self.train_available}"
        return "all taken"


def general_target(domain_train: int, ratio: float) -> int:
    return round(domain_train * (1 - ratio) / ratio)


def _capped(wanted: int, active: list[str], weight: dict[str, float], limit: dict[str, int]) -> dict[str, int]:
    """Water-filling: round by round, the sources whose weighted share of the rows still wanted is over their
    cap are held at it; returns them with their caps."""
    capped: dict[str, int] = {}
    while active:
        remaining = wanted - sum(capped.values())
        total = sum(weight[n] for n in active)
        over = [n for n in active if remaining * weight[n] / total > limit[n]]
        if not over:
            break
        capped.update({n: limit[n] for n in over})
        active = [n for n in active if n not in over]
    return capped


def _shares(rows: int, active: list[str], weight: dict[str, float]) -> dict[str, int]:
    """`rows` split by weight in whole rows: floors, then one more to the largest remainders (ties: in order)."""
    total = sum(weight[n] for n in active)
    exact = {n: rows * weight[n] / total for n in active}
    floors = {n: math.floor(v) for n, v in exact.items()}
    left = rows - sum(floors.values())
    for n in sorted(active, key=lambda n: (floors[n] - exact[n], active.index(n)))[:left]:
        floors[n] += 1
    return floors


def plan_targets(wanted: int, sources: list[tuple[str, float, int]], cap: float) -> tuple[dict[str, int], set[str]]:
    """Train rows per source for `wanted` general rows: (name, weight, rows available) -> target; and the
    sources held at their cap. Shares by weight; a capped source's shortfall goes to the rest."""
    limit = {n: math.floor(cap * a + 1e-9) for n, _, a in sources}
    weight = {n: w for n, w, _ in sources}
    targets = {n: 0 for n, _, _ in sources}
    with_rows = [n for n, _, a in sources if a > 0]
    capped = _capped(wanted, with_rows, weight, limit)
    targets.update(capped)
    active = [n for n in with_rows if n not in capped]
    remaining = wanted - sum(capped.values())
    if active and remaining > 0:
        targets.update(_shares(remaining, active, weight))
    return targets, set(capped)


def rank(seed: int, samples: list[Sample]) -> list[Sample]:
    return sorted(samples, key=lambda s: (unit_hash(seed, "take", s.sample_id), s.sample_id))


def select(plan: SourcePlan, train: list[Sample], eval_: list[Sample], seed: int,
           why: str) -> tuple[list[Sample], list[Sample], list[Reject]]:
    """Apply a plan's target to one source: (train rows with repeats, eval rows, rejects of the rest)."""
    train, eval_ = rank(seed, train), rank(seed, eval_)
    n = len(train)
    take = min(plan.target, n)
    eval_take = round(len(eval_) * min(1.0, plan.target / n)) if n else 0  # eval follows the train share
    rejects = [Reject(s.ref, "over_ratio", f"not among the {take} of {n} {plan.source} train rows the mix takes "
                                           f"({why})", {"source": plan.source, "sample_id": s.sample_id,
                                                        "split": "train", "rank": i})
               for i, s in enumerate(train[take:], start=take)]
    rejects += [Reject(s.ref, "over_ratio", f"not among the {eval_take} of {len(eval_)} {plan.source} eval rows "
                                            f"kept in proportion ({why})",
                       {"source": plan.source, "sample_id": s.sample_id, "split": "eval", "rank": i})
                for i, s in enumerate(eval_[eval_take:], start=eval_take)]
    taken = train[:take]
    copies: list[Sample] = []
    extra = max(0, plan.target - n)
    if taken and extra:
        per, more = divmod(extra, len(taken))
        for i, s in enumerate(taken):
            copies += [s.copy(k) for k in range(1, per + (i < more) + 1)]
    plan.train_taken, plan.copies, plan.eval_taken = take, len(copies), eval_take
    plan.dropped = len(rejects)
    return taken + copies, eval_[:eval_take], rejects
