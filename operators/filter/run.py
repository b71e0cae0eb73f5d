"""The filter step's per-chunk work, as the row memo runs it (tasks/framework/memo.py): each chunk's stat
columns, memoized by its text, kind and format; and the report's table of the bounds fitted."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

import pyarrow as pa

from infuse.operators.common.base import Reject
from infuse.operators.filter import FilterConfig, QualityFilter
from infuse.operators.common.result_rows import ROW


@lru_cache(maxsize=4)
def quality_filter(cfg_json: str) -> QualityFilter:
    """One QualityFilter per process and config: data-juicer ops are costly to build."""
    return QualityFilter(FilterConfig.model_validate(json.loads(cfg_json)))


def memo_schema(stat_columns: list[str]) -> pa.Schema:
    return pa.schema([(ROW, pa.int64())] + [(c, pa.float64()) for c in stat_columns])


def stats_rows(cfg_json: str, rows: pa.Table) -> pa.Table:
    """One result row per chunk: `_row` and its stat columns."""
    qf = quality_filter(cfg_json)
    stats = qf.stats_batch(rows).select(qf.stat_columns)
    return stats.add_column(0, ROW, pa.array(range(rows.num_rows), pa.int64()))


def with_stats(batch: pa.Table, stats: pa.Table, stat_columns: list[str]) -> pa.Table:
    """The batch with its stat columns (any it had before replaced)."""
    t = batch.drop_columns([c for c in stat_columns if c in batch.column_names])
    for col in stat_columns:
        t = t.append_column(col, stats.column(col))
    return t


def apply_bounds(qf: QualityFilter, scored: Iterable[pa.RecordBatch], bounds: dict[str, dict[str, Any]],
                 write: Callable[[pa.Table], None]) -> list[Reject]:
    """Write the scored chunks inside every bound; returns a reject naming the bound crossed for each other one."""
    rejects: list[Reject] = []
    for batch in scored:
        kept, rej = qf.apply_batch(pa.Table.from_batches([batch]), bounds)
        write(kept)
        rejects += rej
    return rejects


def _fmt(x: Any) -> str:
    return "" if x is None else f"{x:.4g}" if isinstance(x, float) else str(x)


def bounds_markdown(bounds: dict[str, dict[str, Any]], reuse: dict[str, int], rows: int) -> str:
    """The report's summary: how many chunks were scored, and each stat's bounds with where they came from."""
    md = [f"stats computed for {reuse['memo_misses']} chunk(s), {reuse['memo_hits']} from the memo; bounds "
          f"fitted on all {rows}", "", "### thresholds used", "", "| stat | low | high | source | mean | std | n |",
          "|---|---|---|---|---|---|---|"]
    for stat, b in bounds.items():
        md.append(f"| {stat} | {_fmt(b.get('low'))} | {_fmt(b.get('high'))} | "
                  f"{b.get('low_source') or '-'} / {b.get('high_source') or '-'} | {_fmt(b.get('mean'))} | "
                  f"{_fmt(b.get('std'))} | {b.get('n')} |")
    return "\n".join(md)
