"""Methods `kcenter` and `facility_location`: diversity alone, over MiniLM embeddings of the candidates."""
from __future__ import annotations

from infuse.operators.select.methods.base import Candidates, Method
from infuse.operators.select.selection import DIVERSITY_LABEL, Selection, diverse


class Diverse(Method):
    names = ("kcenter", "facility_location")

    def decide(self, sel: Selection, cand: Candidates) -> None:
        method, budget, seed = cand.cfg.method, cand.cfg.budget, cand.cfg.seed
        emb = cand.embedded()
        label = DIVERSITY_LABEL[method]
        for group in cand.groups():
            picks = {group[p] for p in diverse(emb.of(group), budget.keep(len(group)), method, seed)}
            sel.keep([i for i in group if i in picks], label)
            sel.drop([i for i in group if i not in picks], f"not chosen by {label}",
                     f"{label} over MiniLM embeddings chose {len(picks)} of {len(group)}")
