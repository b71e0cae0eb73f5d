"""What a selection method decides for each row, and the helpers every method shares.

A `Selection` holds, per row: kept or not, exempt or not, which stage kept it,
the reason a dropped row was dropped (one per dropped row, always), and the
score columns the `scored` artifact carries.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from infuse.operators.common.base import Reject
from infuse.operators.select.config import Budget


@dataclass
class Selection:
    n: int
    selected: np.ndarray = field(init=False)
    exempt: np.ndarray = field(init=False)
    by: list[str | None] = field(init=False)  # what kept the row: exempt, ifd, k-center, seed, necessity, ...
    reasons: list[str | None] = field(init=False)
    messages: list[str] = field(init=False)
    details: list[dict[str, Any]] = field(init=False)
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # float columns; NaN = not scored
    stats: dict[str, Any] = field(default_factory=dict)
    cut: dict[str, Any] = field(default_factory=dict)  # for the histogram: score name, values, bounds

    def __post_init__(self) -> None:
        self.selected = np.zeros(self.n, dtype=bool)
        self.exempt = np.zeros(self.n, dtype=bool)
        self.by = [None] * self.n
        self.reasons = [None] * self.n
        self.messages = [""] * self.n
        self.details = [{} for _ in range(self.n)]

    def keep(self, idx: Sequence[int] | np.ndarray, by: str) -> None:
        for i in idx:
            self.selected[i], self.by[i], self.reasons[i] = True, by, None

    def drop(self, idx: Sequence[int] | np.ndarray, reason: str, message: str, **detail: Any) -> None:
        for i in idx:
            self.selected[i], self.by[i] = False, None
            self.reasons[i], self.messages[i] = reason, message
            self.details[i] = {**detail, **self._row_scores(int(i))}

    def score(self, name: str, idx: Sequence[int] | np.ndarray, values: Sequence[float] | np.ndarray) -> None:
        col = self.scores.setdefault(name, np.full(self.n, np.nan))
        col[np.asarray(idx, dtype=np.int64)] = np.asarray(values, dtype=np.float64)

    def _row_scores(self, i: int) -> dict[str, float]:
        return {k: round(float(v[i]), 6) for k, v in self.scores.items() if np.isfinite(v[i])}

    def rejects(self, ids: Sequence[str]) -> list[Reject]:
        return [Reject(ids[i], r, self.messages[i], self.details[i]) for i, r in enumerate(self.reasons) if r]

    def check(self) -> None:
        """Every row is kept or has its reason: a method that forgets one is a bug."""
        missing = [i for i in range(self.n) if not self.selected[i] and not self.reasons[i]]
        if missing:
            raise RuntimeError(f"select: {len(missing)} rows neither kept nor rejected (first: {missing[0]})")


def groups(values: Sequence[Any] | None, idx: Sequence[int]) -> list[list[int]]:
    """`idx` split by the group column's value (one group when there is no column), in first-seen order."""
    if values is None:
        return [list(idx)]
    out: dict[Any, list[int]] = {}
    for i in idx:
        out.setdefault(values[i], []).append(i)
    return list(out.values())


def top(idx: Sequence[int], values: np.ndarray, k: int) -> tuple[list[int], list[int]]:
    """(the k of `idx` with the highest values, the rest): ties by row order."""
    order = sorted(idx, key=lambda i: (-values[i], i))
    return order[:k], order[k:]


def scaled(budget: Budget, factor: float) -> Budget:
    """The budget `factor` times larger (a candidate pool for a second stage)."""
    if budget.n is not None:
        return Budget(n=int(np.ceil(budget.n * factor)), per=budget.per)
    pct = 100.0 if budget.percent is None else budget.percent
    return Budget(percent=min(100.0, pct * factor), per=budget.per)


def diverse(x: np.ndarray, k: int, method: str, seed: int = 0) -> list[int]:
    """k row positions of `x` chosen by k-center greedy or facility location."""
    if method == "kcenter":
        from infuse.operators.select.kcenter import k_center_greedy

        return k_center_greedy(x, k, seed=seed)
    from infuse.operators.select.facility import facility_location

    return facility_location(x, k)


DIVERSITY_LABEL = {"kcenter": "k-center", "facility_location": "facility location"}
