"""filter: per-chunk quality stats (data-juicer filters), fixed and 3σ bounds, rejects with the bound crossed.

Three passes over the input, never holding it whole: (1) compute stats shard by
shard into `scored` (every chunk with its stat columns, so users can
re-threshold without recomputing), memoized per chunk by text, kind and format
(tasks.memo), so a run after adding documents computes only the new chunks'
stats; (2) fit bounds from the stat columns alone, over the whole corpus on
every run; (3) keep the rows inside every bound.
"""
from __future__ import annotations

import json
from functools import lru_cache, partial
from typing import Any

import pyarrow as pa
from pydantic import Field

from infuse.operators.common.base import Reject
from infuse.operators.filter import FilterConfig, FilterOpSpec, QualityFilter
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, table
from infuse.tasks.framework.shards import ShardStats, shard_rows
from infuse.tasks.framework.memo import ROW, RowMemo, text_key


class FilterOptions(StepOptions, FilterConfig):
    """Stat ops with fixed `min`/`max` and/or `auto` (3σ) bounds."""

    ops: list[FilterOpSpec] = Field(default_factory=lambda: FilterConfig.default().ops)


@lru_cache(maxsize=4)
def _filter(cfg_json: str) -> QualityFilter:
    return QualityFilter(FilterConfig.model_validate(json.loads(cfg_json)))


def stats_rows(cfg_json: str, rows: pa.Table) -> pa.Table:
    """One result row per chunk: `_row` and its stat columns."""
    qf = _filter(cfg_json)
    stats = qf.stats_batch(rows).select(qf.stat_columns)
    return stats.add_column(0, ROW, pa.array(range(rows.num_rows), pa.int64()))


def _fmt(x: Any) -> str:
    return "" if x is None else f"{x:.4g}" if isinstance(x, float) else str(x)


class Filter(Step):
    name = "filter"
    stage = 40
    description = "quality stats per chunk with fixed and automatic 3σ thresholds; histograms in the UI"
    inputs = ("chunks",)
    outputs = {"chunks": table(description="the chunks inside every bound"),
               "scored": table(description="every chunk with one stat_* column per statistic")}
    Options = FilterOptions

    def run(self, ctx: StepContext) -> StepOutput:
        cfg_json = json.dumps({"ops": ctx.cfg["ops"]}, sort_keys=True)
        qf = _filter(cfg_json)
        src = ctx.input("chunks")
        shards = ShardStats()
        memo_schema = pa.schema([(ROW, pa.int64())] + [(c, pa.float64()) for c in qf.stat_columns])
        batches = (pa.Table.from_batches([b]) for b in ctx.batches("chunks", batch_size=shard_rows(ctx.runtime)))
        with RowMemo(ctx, memo_schema) as memo, ctx.writer("scored") as w, \
                ctx.progress(src.rows, "filter: stats", "chunks") as bar:
            for plan, computed in memo.map(partial(stats_rows, cfg_json), batches, text_key, ctx.runtime, shards):
                stats = memo.merge(plan, computed)
                t = plan.batch.drop_columns([c for c in qf.stat_columns if c in plan.batch.column_names])
                for col in qf.stat_columns:
                    t = t.append_column(col, stats.column(col))
                w.write(t)
                bar.update(t.num_rows)
            if w.rows == 0:  # nothing to score: still give `scored` its columns
                w.fallback_schema = qf.stats_batch(ctx.read("chunks").slice(0, 0)).schema
            scored = w.commit()
            reuse = memo.commit()

        stat_table = ctx.store.read(scored, columns=qf.stat_columns)  # floats only: small even for a big corpus
        bounds = qf.fit(stat_table)
        rejects: list[Reject] = []
        with ctx.writer("chunks", fallback_schema=ctx.store.schema(scored)) as w:
            for batch in ctx.store.iter_batches(scored, batch_size=5_000):
                kept, rej = qf.apply_batch(pa.Table.from_batches([batch]), bounds)
                w.write(kept)
                rejects += rej
            out = w.commit()

        md = [f"stats computed for {reuse['memo_misses']} chunk(s), {reuse['memo_hits']} from the memo; bounds "
              f"fitted on all {src.rows}", "", "### thresholds used", "", "| stat | low | high | source | mean | std | n |", "|---|---|---|---|---|---|---|"]
        for stat, b in bounds.items():
            md.append(f"| {stat} | {_fmt(b.get('low'))} | {_fmt(b.get('high'))} | "
                      f"{b.get('low_source') or '-'} / {b.get('high_source') or '-'} | {_fmt(b.get('mean'))} | "
                      f"{_fmt(b.get('std'))} | {b.get('n')} |")
        # histograms with the thresholds drawn: saved in the step's report, inline in the UI
        images = {f"hist_{stat}": png for stat, png in qf.plots(stat_table, bounds).items()}
        return StepOutput({"chunks": out, "scored": scored}, rejects, StepReport(
            rows_in=src.rows, kept=out.rows, unit_in="chunks", unit_out="chunks", markdown="\n".join(md),
            images=images, stats={"bounds": json.loads(json.dumps(bounds, default=float)), **reuse, **shards.to_dict()}))
