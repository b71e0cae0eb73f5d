"""Selection by IFD: drop IFD >= max_ifd, keep the top of the rest, optionally diversify (Superfiltering).

Superfiltering's finding is that a small model's IFD ranks data about as a
large model's does, so the `superfilter` method scores with the packaged
Gemma 3 270M unless told otherwise, while `ifd` scores with the recipe's own
base model. Both then cut the same way: rows whose answer the prompt does not
make easier (IFD >= 1 by default) go first, then the budget keeps the highest
IFD of the rest (per group when asked). With diversity on (Superfiltering-D),
IFD keeps a pool `pool` times the budget and k-center or facility location over
MiniLM embeddings picks the budget from it.

Unlike the reference code, nothing here assumes a dataset size: budgets are a
share or a count of the rows actually given.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from infuse.operators.select.config import SelectConfig
from infuse.operators.select.ifd import IFDScores, describe
from infuse.operators.select.selection import DIVERSITY_LABEL, Selection, diverse, groups, scaled, top


def default_scorer() -> str:
    """The small scorer: the packaged Gemma 3 270M."""
    from infuse.operators.common.models import local_model_path

    return str(local_model_path())


def record_scores(sel: Selection, cand: Sequence[int], scores: IFDScores) -> None:
    sel.score("score_ifd", cand, scores.loss_ratio)
    sel.score("score_ifd_ppl", cand, scores.ppl_ratio)
    sel.score("score_s_a_given_q", cand, scores.s_a_given_q)
    sel.score("score_s_a", cand, scores.s_a)
    sel.score("score_answer_tokens", cand, scores.answer_tokens)


def select_by_ifd(sel: Selection, cand: Sequence[int], scores: IFDScores, cfg: SelectConfig,
                  group_col: Sequence[str] | None, embed: Callable[[list[int]], np.ndarray]) -> None:
    """Decide every row of `cand` (row indices; `scores` are in the same order)."""
    record_scores(sel, cand, scores)
    sel.stats["ifd"] = describe(scores, cfg.ifd.variant)
    name = "ifd" if cfg.ifd.variant == "loss_ratio" else "ifd_ppl"
    values = sel.scores[f"score_{name}"]
    errors = dict(zip(cand, scores.errors))
    bad = [i for i in cand if not np.isfinite(values[i])]
    for i in bad:
        sel.drop([i], "unscorable", errors.get(i) or "s(A) is 0: the answer is certain without the prompt")
    valid = [i for i in cand if np.isfinite(values[i])]
    max_ifd = cfg.ifd.max_ifd
    sel.cut = {"score": name, "values": values[valid], "max": max_ifd, "keep": None, "label": cfg.budget.label()}
    if max_ifd is not None:
        for i in valid:
            if values[i] >= max_ifd:
                sel.drop([i], f"{name}>={max_ifd:g}",
                         f"{name} {values[i]:.3f} >= {max_ifd:g}: the prompt does not make the answer easier",
                         max_ifd=max_ifd)
        valid = [i for i in valid if values[i] < max_ifd]
    div = cfg.diversity.method
    pool_budget = scaled(cfg.budget, cfg.diversity.pool) if div != "none" else cfg.budget
    kept_values: list[float] = []
    for g in groups(group_col, valid):
        k, k_pool = cfg.budget.keep(len(g)), pool_budget.keep(len(g))
        pool, rest = top(g, values, k_pool)
        sel.drop(rest, f"below {pool_budget.label()} by {name}",
                 f"{name} under the {pool_budget.label()} of {len(g)} candidates" + (" of its group" if group_col else ""))
        if div == "none" or k >= len(pool):
            sel.keep(pool, name)
            kept_values += [values[i] for i in pool]
            continue
        chosen = set(pool[j] for j in diverse(embed(pool), k, div, cfg.seed))
        label = DIVERSITY_LABEL[div]
        sel.keep([i for i in pool if i in chosen], f"{name}+{label}")
        sel.drop([i for i in pool if i not in chosen], f"not chosen by {label}",
                 f"in the {name} pool, but {label} over MiniLM embeddings chose {k} others")
        kept_values += [values[i] for i in pool if i in chosen]
    if kept_values and group_col is None and div == "none":
        sel.cut["keep"] = float(min(kept_values))  # one global cut: the lowest IFD kept
