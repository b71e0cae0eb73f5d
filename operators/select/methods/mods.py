"""Method `mods`: quality, coverage, necessity (the stages are in `operators/select/mods.py`)."""
from __future__ import annotations

from infuse.operators.select.methods.base import Candidates, Method, Scores
from infuse.operators.select.mods import select_mods
from infuse.operators.select.selection import Selection


class Mods(Method):
    names = ("mods",)

    def decide(self, sel: Selection, cand: Candidates) -> None:
        cfg, rows = cand.cfg, cand.rows
        quality, necessity = cand.scorers.quality, cand.scorers.necessity
        nec = cfg.mods.necessity
        if quality is None:
            raise ValueError("select method mods needs a quality scorer")
        if nec.enabled and necessity is None:
            raise ValueError("select method mods with necessity on needs a necessity scorer")

        def quality_of(idx: list[int]) -> Scores:
            return quality(cand.conversations(idx), [str(rows[i].get("lang") or "en") for i in idx])

        def necessity_of(seed_set: list[int], rest: list[int]) -> Scores:
            return necessity([dict(rows[i]) for i in seed_set], cand.conversations(rest))  # type: ignore[misc]

        select_mods(sel, cand.idx, quality=quality_of, kind=cfg.mods.quality.kind,
                    threshold=cfg.mods.quality.threshold, embed=cand.embed, budget=cfg.budget,
                    group_col=cand.group_col, seed=cfg.seed, necessity=necessity_of if nec.enabled else None,
                    necessity_threshold=nec.threshold, max_added=nec.max_added)
