"""Methods `ifd` and `superfilter`: drop IFD >= max_ifd, keep the top of the rest, optionally diversify.

Superfiltering's finding is that a small model's IFD ranks data about as a
large model's does, so `superfilter` scores with the packaged Gemma 3 270M
unless told otherwise, while `ifd` scores with the recipe's own base model
(the scorer is chosen in `scorers.py`). Both then cut the same way: rows whose
answer the prompt does not make easier (IFD >= 1 by default) go first, then
the budget keeps the highest IFD of the rest (per group when asked). With
diversity on (Superfiltering-D), IFD keeps a pool `pool` times the budget and
k-center or facility location over MiniLM embeddings picks the budget from it.

Unlike the reference code, nothing here assumes a dataset size: budgets are a
share or a count of the rows actually given.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from infuse.operators.select.config import SelectConfig
from infuse.operators.select.ifd import IFDScores, describe
from infuse.operators.select.methods.base import Candidates, Method
from infuse.operators.select.selection import DIVERSITY_LABEL, Selection, diverse, scaled, top


def record_scores(sel: Selection, cand: Sequence[int], scores: IFDScores) -> None:
    """Every IFD column of the `scored` artifact, for rows `cand` (in the order of `scores`)."""
    sel.score("score_ifd", cand, scores.loss_ratio)
    sel.score("score_ifd_ppl", cand, scores.ppl_ratio)
    sel.score("score_s_a_given_q", cand, scores.s_a_given_q)
    sel.score("score_s_a", cand, scores.s_a)
    sel.score("score_answer_tokens", cand, scores.answer_tokens)


def score_name(cfg: SelectConfig) -> str:
    """The IFD variant rows are ranked by: its name in reasons, its column is `score_<name>`."""
    return "ifd" if cfg.ifd.variant == "loss_ratio" else "ifd_ppl"


class IFDCut(Method):
    names = ("ifd", "superfilter")

    def decide(self, sel: Selection, cand: Candidates) -> None:
        cfg = cand.cfg
        scores = cand.ifd_scores(f"select method {cfg.method} needs an IFD scorer")
        record_scores(sel, cand.idx, scores)
        sel.stats["ifd"] = describe(scores, cfg.ifd.variant)
        name = score_name(cfg)
        values = sel.scores[f"score_{name}"]
        valid = _drop_unscorable(sel, cand.idx, values, scores.errors)
        sel.cut = {"score": name, "values": values[valid], "max": cfg.ifd.max_ifd, "keep": None,
                   "label": cfg.budget.label()}
        valid = _drop_at_or_above(sel, valid, values, name, cfg.ifd.max_ifd)
        kept = [v for group in cand.groups(valid) for v in _keep_group(sel, cand, group, values, name)]
        if kept and cand.group_col is None and cfg.diversity.method == "none":
            sel.cut["keep"] = float(min(kept))  # one global cut: the lowest IFD kept


def _drop_unscorable(sel: Selection, idx: list[int], values: np.ndarray, errors: list[str | None]) -> list[int]:
    """Drop the rows without a finite IFD, with the scorer's reason; return the others."""
    why = dict(zip(idx, errors))
    for i in idx:
        if not np.isfinite(values[i]):
            sel.drop([i], "unscorable", why.get(i) or "s(A) is 0: the answer is certain without the prompt")
    return [i for i in idx if np.isfinite(values[i])]


def _drop_at_or_above(sel: Selection, idx: list[int], values: np.ndarray, name: str,
                      max_ifd: float | None) -> list[int]:
    """Drop the rows with IFD >= max_ifd (None: no cut); return the others."""
    if max_ifd is None:
        return idx
    for i in idx:
        if values[i] >= max_ifd:
            sel.drop([i], f"{name}>={max_ifd:g}",
                     f"{name} {values[i]:.3f} >= {max_ifd:g}: the prompt does not make the answer easier",
                     max_ifd=max_ifd)
    return [i for i in idx if values[i] < max_ifd]


def _keep_group(sel: Selection, cand: Candidates, group: list[int], values: np.ndarray, name: str) -> list[float]:
    """The budget of one group: the top by IFD (a larger pool when diversity follows); the IFD values kept."""
    cfg = cand.cfg
    div = cfg.diversity.method
    pool_budget = scaled(cfg.budget, cfg.diversity.pool) if div != "none" else cfg.budget
    k = cfg.budget.keep(len(group))
    pool, rest = top(group, values, pool_budget.keep(len(group)))
    sel.drop(rest, f"below {pool_budget.label()} by {name}", f"{name} under the {pool_budget.label()} of "
             f"{len(group)} candidates" + (" of its group" if cand.group_col else ""))
    if div == "none" or k >= len(pool):
        sel.keep(pool, name)
        return [values[i] for i in pool]
    chosen = {pool[j] for j in diverse(cand.embed(pool), k, div, cfg.seed)}
    label = DIVERSITY_LABEL[div]
    sel.keep([i for i in pool if i in chosen], f"{name}+{label}")
    sel.drop([i for i in pool if i not in chosen], f"not chosen by {label}",
             f"in the {name} pool, but {label} over MiniLM embeddings chose {k} others")
    return [values[i] for i in pool if i in chosen]
