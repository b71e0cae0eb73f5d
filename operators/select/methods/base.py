"""The contract every selection method keeps, and what a method is given.

A method is a small class with the method names it answers to (`names`) and
one call, `decide(sel, cand)`: for every candidate row (a row not exempt) it
records in the `Selection` either what kept it, or why it was dropped (reason
and message), plus the score columns it computed and its stats.
`select_rows` then checks that no candidate was left undecided.

The models a method needs come in as functions (`Scorers`), built by the
caller only when the method uses them: the step from the recipe, tests from
tiny models or fixed numbers.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from infuse.operators.select.config import SelectConfig
from infuse.operators.select.embeddings import embed_rows
from infuse.operators.select.ifd import IFDScores
from infuse.operators.select.mods import Scores
from infuse.operators.select.selection import Selection, groups

IFDFn = Callable[[list[Any]], IFDScores]
QualityFn = Callable[[list[Any], list[str]], Scores]
NecessityFn = Callable[[list[dict[str, Any]], list[Any]], Scores]
EmbedFn = Callable[[list[Any]], np.ndarray]


@dataclass
class Scorers:
    """`ifd(conversations)`, `quality(conversations, langs)`, `necessity(seed_rows, conversations)` and
    `embed(conversations)` (None: MiniLM over the text `diversity.text` names)."""

    ifd: IFDFn | None = None
    quality: QualityFn | None = None
    necessity: NecessityFn | None = None
    embed: EmbedFn | None = None


@dataclass
class Candidates:
    """The rows a method decides: `idx` are the row indices of the candidates, in row order."""

    rows: Sequence[dict[str, Any]]
    idx: list[int]
    cfg: SelectConfig
    scorers: Scorers = field(default_factory=Scorers)

    def __post_init__(self) -> None:
        self.conv = [r.get("messages") for r in self.rows]
        per = self.cfg.budget.per
        self.group_col = [str(r.get(per) or "") for r in self.rows] if per else None

    def conversations(self, idx: Sequence[int]) -> list[Any]:
        return [self.conv[i] for i in idx]

    def embed(self, idx: Sequence[int]) -> np.ndarray:
        """Embeddings of rows `idx`, in that order."""
        if self.scorers.embed is not None:
            return self.scorers.embed(self.conversations(idx))
        return embed_rows(self.conversations(idx), self.cfg.diversity.text)

    def groups(self, idx: Sequence[int] | None = None) -> list[list[int]]:
        """`idx` (default: every candidate) split by the budget's `per` column, in first-seen order."""
        return groups(self.group_col, self.idx if idx is None else idx)

    def ifd_scores(self, missing: str) -> IFDScores:
        """IFD of every candidate; `missing` is the error when the caller gave no IFD scorer."""
        if self.scorers.ifd is None:
            raise ValueError(missing)
        return self.scorers.ifd(self.conversations(self.idx))

    def embedded(self) -> Embedded:
        """Every candidate's embedding, computed once."""
        return Embedded(self.embed(self.idx), self.idx)


class Embedded:
    """Embeddings of some rows, looked up by row index."""

    def __init__(self, emb: np.ndarray, idx: Sequence[int]) -> None:
        self.emb = emb
        self.pos = {i: p for p, i in enumerate(idx)}

    def of(self, rows: Sequence[int]) -> np.ndarray:
        return self.emb[[self.pos[i] for i in rows]]


class Method:
    """One selection method; see the module docstring."""

    names: ClassVar[tuple[str, ...]] = ()  # the recipe's `method` values it answers to

    def decide(self, sel: Selection, cand: Candidates) -> None:
        raise NotImplementedError
