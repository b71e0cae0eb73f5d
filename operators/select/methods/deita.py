"""Method `diversity` (DEITA-style): visit rows in score order, keep each unless it is too close to one
already kept, until the budget is filled.

The order is `deita.order`: answer length, IFD (rows without a finite IFD
last), or a seeded random one.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from infuse.operators.select.baselines import cosine_diversity
from infuse.operators.select.methods.base import Candidates, Method
from infuse.operators.select.methods.ifd_cut import record_scores, score_name
from infuse.operators.select.methods.longest import record_answer_lengths
from infuse.operators.select.selection import Selection


class Deita(Method):
    names = ("diversity",)

    def decide(self, sel: Selection, cand: Candidates) -> None:
        values = _order_values(sel, cand)
        emb = cand.embedded()
        for group in cand.groups():
            _decide_group(sel, cand, group, values, emb.of)


def _order_values(sel: Selection, cand: Candidates) -> np.ndarray:
    """A value per row (indexed by row) that the candidates are visited in, highest first."""
    cfg = cand.cfg
    if cfg.deita.order == "ifd":
        record_scores(sel, cand.idx, cand.ifd_scores("select method diversity with order ifd needs an IFD scorer"))
        values = sel.scores[f"score_{score_name(cfg)}"]
        return np.where(np.isfinite(values), values, -np.inf)
    if cfg.deita.order == "longest":
        return record_answer_lengths(sel, cand)
    values = np.zeros(sel.n)
    values[cand.idx] = np.random.default_rng(cfg.seed).random(len(cand.idx))  # a seeded random order
    return values


def _decide_group(sel: Selection, cand: Candidates, group: list[int], values: np.ndarray,
                  embed_of: Callable[[list[int]], np.ndarray]) -> None:
    """Visit one group in score order; keep, drop as redundant, or drop as beyond the budget."""
    budget, t, order_by = cand.cfg.budget, cand.cfg.deita.threshold, cand.cfg.deita.order
    order = sorted(group, key=lambda i: (-values[i], i))
    kept_pos, redundant_pos = cosine_diversity(embed_of(order), range(len(order)), budget.keep(len(group)), t)
    kept = [order[p] for p in kept_pos]
    redundant = [order[p] for p in redundant_pos]
    sel.keep(kept, "diversity")
    sel.drop(redundant, f"cos>={t:g} to a kept row", f"MiniLM cosine similarity >= {t:g} to a row kept before it")
    done = set(kept) | set(redundant)
    sel.drop([i for i in group if i not in done], f"beyond {budget.label()} by {order_by}",
             f"the budget was filled before this row's turn ({order_by} order)")
