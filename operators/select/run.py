"""The select operator: `run` (a QA table in; kept rows, scored rows, rejects and report out) and
`select_rows` (the decision alone: mark exempt rows, let the recipe's method decide the candidates).

Nothing here needs Prefect: what the step lends (the recipe's model section, a
scratch dir, the trainer for MoDS' seed model, progress bars) comes in as
`Hooks`, and tests pass plain functions or tiny models.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from infuse.operators.common.base import Reject
from infuse.operators.select.config import SelectConfig
from infuse.operators.select.methods import Candidates, Scorers, method
from infuse.operators.select.methods.base import EmbedFn, IFDFn, NecessityFn, QualityFn
from infuse.operators.select.report import report_parts
from infuse.operators.select.scorers import IFDScorer, ProgressFn, necessity_fn, quality_fn
from infuse.operators.select.seed import TrainFn, seed_model
from infuse.operators.select.selection import Selection


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass


def no_progress(total: int, desc: str = "", unit: str = "") -> nullcontext[_NoBar]:
    return nullcontext(_NoBar())


@dataclass
class Hooks:
    """What the caller lends the operator: the recipe's `model:` section (ifd's default scorer, the seed
    model's base), a scratch dir that survives a kill (made only when the seed model is trained), the
    trainer that runs the seed model's job, and progress bars."""

    model: dict[str, Any] = field(default_factory=dict)
    work_dir: Callable[[], Path] | None = None
    train: TrainFn | None = None
    progress: ProgressFn = no_progress

    def seed_model(self, cfg: SelectConfig) -> Callable[[list[dict[str, Any]], str], str]:
        def tune(seed_rows: list[dict[str, Any]], base: str) -> str:
            if self.work_dir is None or self.train is None:
                raise ValueError("select: mods necessity fine-tunes a seed model, which needs a work dir and a "
                                 "trainer (or name one in mods.necessity.model)")
            return seed_model(self.work_dir() / "necessity-model", cfg.mods.necessity, seed_rows, base, self.model,
                              self.train)

        return tune


@dataclass
class SelectOutput:
    kept: pa.Table  # the selected rows, the input's schema and order
    scored: pa.Table  # every row with its score columns, selected, exempt, selected_by and reason
    rejects: list[Reject]
    report: dict[str, Any]  # markdown, tables, images, stats (a StepReport's fields)


def run(qa: pa.Table, cfg: SelectConfig, hooks: Hooks, sources: dict[str, str] | None = None) -> SelectOutput:
    """Select from `qa`; `sources` maps doc_id to the document's path for the report."""
    rows = qa.to_pylist()
    ifd = IFDScorer(cfg, hooks.model, hooks.progress)
    sel = select_rows(rows, cfg, ifd=ifd, quality=quality_fn(cfg),
                      necessity=necessity_fn(cfg, hooks.model, hooks.seed_model(cfg)))
    kept = qa.take(pa.array(np.flatnonzero(sel.selected), type=pa.int64()))
    ids = [r.get("sample_id") or f"row{i}" for i, r in enumerate(rows)]
    report = report_parts(rows, sel, cfg, ifd.info, ifd.timing, sources or {})
    return SelectOutput(kept, scored_table(qa, sel), sel.rejects(ids), report)


def select_rows(rows: Sequence[dict[str, Any]], cfg: SelectConfig, *, ifd: IFDFn | None = None,
                quality: QualityFn | None = None, necessity: NecessityFn | None = None,
                embed: EmbedFn | None = None) -> Selection:
    """Every row decided: exempt rows kept, the others by the recipe's method (see `methods/`)."""
    sel = Selection(len(rows))
    exempt = [i for i, r in enumerate(rows) if cfg.exempt(r.get("strategy"))]
    sel.exempt[exempt] = True
    sel.keep(exempt, "exempt")
    cand = [i for i in range(len(rows)) if not sel.exempt[i]]
    sel.stats.update({"method": cfg.method, "rows": len(rows), "exempt": len(exempt), "candidates": len(cand)})
    if cand:
        method(cfg.method).decide(sel, Candidates(rows, cand, cfg, Scorers(ifd, quality, necessity, embed)))
    sel.check()
    sel.stats["kept"] = int(sel.selected.sum())
    return sel


def scored_table(qa: pa.Table, sel: Selection) -> pa.Table:
    """`qa` with the selection's columns and every score column (NaN as null)."""
    cols = {name: qa.column(name) for name in qa.column_names}
    cols["selected"] = pa.array(sel.selected.tolist(), pa.bool_())
    cols["exempt"] = pa.array(sel.exempt.tolist(), pa.bool_())
    cols["selected_by"] = pa.array(sel.by, pa.string())
    cols["reason"] = pa.array(sel.reasons, pa.string())
    for name, values in sorted(sel.scores.items()):
        cols[name] = pa.array([float(v) if np.isfinite(v) else None for v in values], pa.float64())
    return pa.table(cols)
