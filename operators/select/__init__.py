"""Data selection: which QA rows to train on, with every row's scores and fate kept.

Methods, one module each: `ifd` (instruction-following difficulty, exact and
batched; loss-ratio and perplexity-ratio variants), `superfilter` (IFD cut and
budget, scored by a small model, optional diversity), `mods` (quality, coverage,
necessity), `kcenter` and `facility` (diversity over MiniLM embeddings),
`baselines` (longest answers, DEITA-style cosine diversity, random).
`select_rows` (run.py) applies the recipe's method and decides every row.
"""
from __future__ import annotations

from infuse.operators.select.config import METHODS, Budget, SelectConfig
from infuse.operators.select.run import select_rows
from infuse.operators.select.selection import Selection

__all__ = ["METHODS", "Budget", "SelectConfig", "Selection", "select_rows"]
