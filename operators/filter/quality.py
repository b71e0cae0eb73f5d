"""QualityFilter: per-chunk stats from data-juicer filters, corpus-fitted bounds, and rejects.

Three passes so the step can stream: `stats_batch` on every batch (stats
are kept as `stat_<name>` columns, to inspect and re-threshold without
recomputing), `fit` once on the stat columns alone, then `apply_batch`.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa

from infuse.operators.common import dj
from infuse.operators.common.base import Reject
from infuse.operators.clean.cleaner import batch_context
from infuse.operators.filter.bounds import fit_stat
from infuse.operators.filter.config import FilterConfig
from infuse.operators.filter.ops import INFUSE_FILTERS
from infuse.operators.filter.stat_ops import STAT_PREFIX, OutOfBounds, StatOp, stat_op

__all__ = ["STAT_PREFIX", "QualityFilter"]


class QualityFilter:
    """The recipe's stat ops over batches of chunks: stats, bounds fitted on the corpus, the chunks inside them."""

    def __init__(self, cfg: FilterConfig | None = None) -> None:
        self.cfg = cfg or FilterConfig.default()
        self.ops = [stat_op(s) for s in self.cfg.ops]
        seen: dict[str, str] = {}
        for op in self.ops:
            if op.stat in seen:
                raise ValueError(
                    f"stat {op.stat!r} is made by both {seen[op.stat]} and {op.name}; give one a `column` name"
                )
            seen[op.stat] = op.name
        self._need_lang = any(op.gate.only_lang is not None or op.name in INFUSE_FILTERS for op in self.ops)
        self.notes = [
            f"{op.name}: computed only where {op.gate.model_dump(exclude_none=True)} (auto gate)"
            for op in self.ops if op.auto_gated
        ]

    @property
    def stat_columns(self) -> list[str]:
        return [op.column for op in self.ops]

    # -- pass 1 ------------------------------------------------------------

    def stats_batch(self, table: pa.Table) -> pa.Table:
        """The batch plus one float64 column per stat: null where the op does not apply, NaN where it failed."""
        n = table.num_rows
        texts = [t or "" for t in table.column("text").to_pylist()]
        fmts, kinds, langs = batch_context(table, self._need_lang)
        context: list[dict] = [{} for _ in range(n)]
        out = table
        for op in self.ops:
            values: list[float | None] = [None] * n
            rows = [i for i in range(n) if op.gate.applies(fmts[i], kinds[i], langs[i])]
            if rows:
                res = self._run(op, [texts[i] for i in rows], [langs[i] for i in rows], [context[i] for i in rows])
                for i, v in zip(rows, res):
                    values[i] = v
            arr = pa.array(values, type=pa.float64())
            if op.column in out.column_names:
                out = out.set_column(out.column_names.index(op.column), op.column, arr)
            else:
                out = out.append_column(op.column, arr)
        return out

    @staticmethod
    def _run(op: StatOp, texts: list[str], langs: list[str], context: list[dict]) -> list[float]:
        try:
            return op.compute(texts, langs, context)
        except dj.DjAssetError:
            raise
        except Exception:
            pass
        out = []
        for t, lang in zip(texts, langs):
            try:
                out.append(op.compute([t], [lang], [{}])[0])
            except dj.DjAssetError:
                raise
            except Exception:  # noqa: BLE001 - recorded as NaN, rejected as stat_failed
                out.append(math.nan)
        return out

    # -- pass 2 ------------------------------------------------------------

    def fit(self, stats: pa.Table | pa.RecordBatch | Iterable[pa.Table | pa.RecordBatch]) -> dict[str, dict[str, Any]]:
        """Bounds per stat from the stat columns (a table, or an iterable of batches/tables).

        Returns {stat: {low, high, low_source, high_source, source, n, mean, std, median, auto: {...}, ...}}.
        """
        parts: dict[str, list[np.ndarray]] = {op.column: [] for op in self.ops}
        batches = [stats] if isinstance(stats, (pa.Table, pa.RecordBatch)) else stats
        for b in batches:
            for col in parts:
                if col not in b.column_names:
                    raise KeyError(f"stat column {col!r} missing; run stats_batch first")
                parts[col].append(b.column(col).to_numpy(zero_copy_only=False).astype(np.float64))
        bounds: dict[str, dict[str, Any]] = {}
        for op in self.ops:
            values = np.concatenate(parts[op.column]) if parts[op.column] else np.zeros(0)
            b = fit_stat(values, op.low, op.high, op.auto)
            b.update(op=op.name, column=op.column, params=dict(op.spec.params))
            bounds[op.stat] = b
        return bounds

    # -- pass 3 ------------------------------------------------------------

    def apply_batch(self, table: pa.Table, bounds: dict[str, dict[str, Any]]) -> tuple[pa.Table, list[Reject]]:
        """Keep rows within every bound. A reject names the first stat out of range (in recipe order)."""
        n = table.num_rows
        out_of: list[list[OutOfBounds]] = [[] for _ in range(n)]
        for op in self.ops:
            for i, why in op.outside(table, bounds.get(op.stat, {})).items():
                out_of[i].append(why)
        ids = table.column("chunk_id").to_pylist()
        keep = [i for i in range(n) if not out_of[i]]
        rejects = [_reject(ids[i], why, bounds) for i, why in enumerate(out_of) if why]
        out = table if len(keep) == n else table.take(pa.array(keep, type=pa.int64()))
        return out, rejects

    # -- plots -------------------------------------------------------------

    def plots(self, stats: pa.Table | Iterable[pa.Table | pa.RecordBatch], bounds: dict[str, dict[str, Any]],
              bins: int = 60) -> dict[str, bytes]:
        """One histogram PNG per stat with its low/high bounds drawn."""
        from infuse.operators.common.plots import histogram_png

        batches = [stats] if isinstance(stats, (pa.Table, pa.RecordBatch)) else list(stats)
        out = {}
        for op in self.ops:
            x = np.concatenate([b.column(op.column).to_numpy(zero_copy_only=False).astype(np.float64)
                                for b in batches]) if batches else np.zeros(0)
            b = bounds.get(op.stat, {})
            log = bool(op.auto and op.auto.scale == "log")
            out[op.stat] = histogram_png(op.stat, x, b.get("low"), b.get("high"), log=log, bins=bins,
                                         sources=(b.get("low_source"), b.get("high_source")))
        return out


def _reject(chunk_id: str, out_of: list[OutOfBounds], bounds: dict[str, dict[str, Any]]) -> Reject:
    """A chunk's reject: its first stat out of range, the others in `also`."""
    first = out_of[0]
    src = bounds.get(first.stat, {}).get(f"{first.side}_source")
    detail = {**first.brief(), "source": src, "also": [o.brief() for o in out_of[1:]]}
    return Reject(chunk_id, first.reason, first.message(src), detail)
