"""filter: per-chunk quality stats (data-juicer filters), fixed and 3σ bounds, rejects with the bound crossed.

Three passes over the input, never holding it whole: (1) compute stats shard by
shard into `scored` (every chunk with its stat columns, so users can
re-threshold without recomputing), memoized per chunk by text, kind and format
(tasks/framework/memo.py), so a run after adding documents computes only the new
chunks' stats; (2) fit bounds from the stat columns alone, over the whole corpus
on every run; (3) keep the rows inside every bound.
"""
from __future__ import annotations

import json
from functools import partial

from pydantic import Field

from infuse.operators.filter import FilterConfig, FilterOpSpec
from infuse.operators.filter.run import apply_bounds, bounds_markdown, memo_schema, quality_filter, stats_rows, \
    with_stats
from infuse.operators.common.result_rows import text_key
from infuse.tasks.framework.memo import RowMemo
from infuse.tasks.framework.shards import ShardStats, shard_rows
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, table


class FilterOptions(StepOptions, FilterConfig):
    """Stat ops with fixed `min`/`max` and/or `auto` (3σ) bounds."""

    ops: list[FilterOpSpec] = Field(default_factory=lambda: FilterConfig.default().ops)


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
        qf, shards = quality_filter(cfg_json), ShardStats()
        with RowMemo(ctx, memo_schema(qf.stat_columns)) as memo, ctx.writer("scored") as w:
            for batch, stats in memo.results("chunks", partial(stats_rows, cfg_json), text_key, stats=shards,
                                             batch_size=shard_rows(ctx.runtime), desc="filter: stats", unit="chunks"):
                w.write(with_stats(batch, stats, qf.stat_columns))
            if w.rows == 0:  # nothing to score: still give `scored` its columns
                w.fallback_schema = qf.stats_batch(ctx.read("chunks").slice(0, 0)).schema
            scored = w.commit()
            reuse = memo.commit()
        stat_table = ctx.store.read(scored, columns=qf.stat_columns)  # floats only: small even for a big corpus
        bounds = qf.fit(stat_table)
        with ctx.writer("chunks", fallback_schema=ctx.store.schema(scored)) as w:
            rejects = apply_bounds(qf, ctx.store.iter_batches(scored, batch_size=5_000), bounds, w.write)
            out = w.commit()
        rows = ctx.input("chunks").rows
        # histograms with the thresholds drawn: saved in the step's report, inline in the UI
        images = {f"hist_{stat}": png for stat, png in qf.plots(stat_table, bounds).items()}
        stats = {"bounds": json.loads(json.dumps(bounds, default=float)), **reuse, **shards.to_dict()}
        return StepOutput({"chunks": out, "scored": scored}, rejects, StepReport(
            rows_in=rows, kept=out.rows, unit_in="chunks", unit_out="chunks",
            markdown=bounds_markdown(bounds, reuse, rows), images=images, stats=stats))

