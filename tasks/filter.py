"""filter: per-chunk quality stats (data-juicer filters), fixed and 3σ bounds, rejects with the bound crossed.

Three passes over the input, never holding it whole: (1) compute stats shard by
shard into `scored` (every chunk with its stat columns, so users can
re-threshold without recomputing); (2) fit bounds from the stat columns alone;
(3) keep the rows inside every bound.
"""
from __future__ import annotations

import base64
import json
from functools import lru_cache, partial
from typing import Any

import pyarrow as pa

from infuse.operators.quality import FilterConfig, QualityFilter
from infuse.storage import ArtifactRef, ArtifactStore
from infuse.tasks.common import StepResult, StepSpec, finish, step_task
from infuse.tasks.shards import map_shards

SPEC = StepSpec(
    name="filter",
    inputs=("chunks",),
    outputs=("chunks", "scored"),
    description="quality stats per chunk with fixed and automatic 3σ thresholds; histograms in the UI",
)


@lru_cache(maxsize=4)
def _filter(cfg_json: str) -> QualityFilter:
    return QualityFilter(FilterConfig.model_validate(json.loads(cfg_json)))


def stats_shard(cfg_json: str, batch: pa.RecordBatch) -> pa.Table:
    return _filter(cfg_json).stats_batch(pa.Table.from_batches([batch]))


def _fmt(x: Any) -> str:
    return "" if x is None else f"{x:.4g}" if isinstance(x, float) else str(x)


@step_task(SPEC)
def filter_(store: ArtifactStore, key: str, cfg: dict[str, Any], inputs: dict[str, ArtifactRef],
            runtime: dict[str, Any]) -> StepResult:
    cfg_json = json.dumps({"ops": cfg["ops"]}, sort_keys=True)
    qf = _filter(cfg_json)
    src = inputs["chunks"]
    with store.writer(SPEC.name, key, "scored", None) as w:
        for table in map_shards(partial(stats_shard, cfg_json), store.iter_batches(src, batch_size=2_000), runtime):
            w.write(table)
        if w.rows == 0:  # nothing to score: still give `scored` its columns
            w.fallback_schema = qf.stats_batch(store.read(src).slice(0, 0)).schema
        scored = w.commit()

    stat_cols = qf.stat_columns
    stat_table = store.read(scored, columns=stat_cols)  # floats only: small even for a big corpus
    bounds = qf.fit(stat_table)
    rejects: list[dict[str, Any]] = []
    with store.writer(SPEC.name, key, "chunks", None, fallback_schema=store.schema(scored)) as w:
        for batch in store.iter_batches(scored, batch_size=5_000):
            kept, rej = qf.apply_batch(pa.Table.from_batches([batch]), bounds)
            w.write(kept)
            rejects += [r.to_row(SPEC.name) for r in rej]
        out = w.commit()

    # histograms with the thresholds drawn: files beside the artifact, and inline in the UI
    pngs = qf.plots(stat_table, bounds)
    md = ["### thresholds used", "", "| stat | low | high | source | mean | std | n |", "|---|---|---|---|---|---|---|"]
    for stat, b in bounds.items():
        md.append(f"| {stat} | {_fmt(b.get('low'))} | {_fmt(b.get('high'))} | "
                  f"{b.get('low_source') or '-'} / {b.get('high_source') or '-'} | {_fmt(b.get('mean'))} | "
                  f"{_fmt(b.get('std'))} | {b.get('n')} |")
    md.append("")
    for stat, png in pngs.items():
        path = store.write_bytes(f"artifacts/{SPEC.name}/{key}/hist_{stat}.png", png)
        md += [f"**{stat}** (`{store.display(path)}`)", "",
               f"![{stat}](data:image/png;base64,{base64.b64encode(png).decode()})", ""]
    bounds_json = json.loads(json.dumps(bounds, default=float))
    stats = {"rows_in": src.rows, "kept": out.rows, "bounds": bounds_json,
             "_report": {"rows_in": src.rows, "kept": out.rows, "unit_in": "chunks", "unit_out": "chunks",
                         "extra_md": "\n".join(md)}}
    return finish(store, SPEC, key, {"chunks": out, "scored": scored}, rejects, stats)
