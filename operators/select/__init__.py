"""Data selection: which QA rows to train on, with every row's scores and fate kept.

`run` (run.py) is the operator the select step calls; `select_rows` decides
the rows with the recipe's method. Methods, one class per file in `methods/`
(registered by name): `ifd` and `superfilter` (IFD cut and budget, optional
diversity), `mods` (quality, coverage, necessity), `kcenter` and
`facility_location` (diversity over MiniLM embeddings), `longest`,
`diversity` (DEITA-style) and `random`. The arithmetic they share lives
beside them: `ifd` (instruction-following difficulty, exact and batched),
`mods` (the MoDS stages), `kcenter`, `facility`, `baselines`.
"""
from __future__ import annotations

from infuse.operators.select.config import METHODS, Budget, SelectConfig
from infuse.operators.select.run import Hooks, SelectOutput, run, select_rows
from infuse.operators.select.selection import Selection

__all__ = ["METHODS", "Budget", "Hooks", "SelectConfig", "SelectOutput", "Selection", "run", "select_rows"]
