"""Method `longest`: the longest answers ("long is more"), a baseline for the model-based methods."""
from __future__ import annotations

import numpy as np

from infuse.operators.select.baselines import answer_lengths
from infuse.operators.select.embeddings import answer_text
from infuse.operators.select.methods.base import Candidates, Method
from infuse.operators.select.selection import Selection, top


def record_answer_lengths(sel: Selection, cand: Candidates) -> np.ndarray:
    """The `score_answer_length` column (lexical tokens, so Chinese and English compare), filled for the
    candidates."""
    sel.score("score_answer_length", cand.idx, answer_lengths([answer_text(m) for m in cand.conversations(cand.idx)]))
    return sel.scores["score_answer_length"]


class Longest(Method):
    names = ("longest",)

    def decide(self, sel: Selection, cand: Candidates) -> None:
        budget = cand.cfg.budget
        values = record_answer_lengths(sel, cand)
        for group in cand.groups():
            kept, rest = top(group, values, budget.keep(len(group)))  # ties by row order
            sel.keep(kept, "longest")
            sel.drop(rest, f"below {budget.label()} by answer length", f"answer shorter than the {budget.label()}")
