"""Method `random`: a seeded draw of the budget, the floor any method should beat."""
from __future__ import annotations

from infuse.operators.select.baselines import random_order
from infuse.operators.select.methods.base import Candidates, Method
from infuse.operators.select.selection import Selection


class RandomDraw(Method):
    names = ("random",)

    def decide(self, sel: Selection, cand: Candidates) -> None:
        budget, seed = cand.cfg.budget, cand.cfg.seed
        for group in cand.groups():
            picks = {group[p] for p in random_order(len(group), budget.keep(len(group)), seed)}
            sel.keep([i for i in group if i in picks], "random")
            sel.drop([i for i in group if i not in picks], "not drawn at random",
                     f"a seeded draw ({seed}) of {len(picks)}")
