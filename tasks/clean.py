"""clean: data-juicer mappers (and infuse's Chinese/Markdown-safe ones) over `chunks`, shard by shard.

Each chunk's cleaned text is memoized by its text, kind and format (tasks.memo),
so a run after adding documents cleans only the new chunks.
"""
from __future__ import annotations

import json
from functools import lru_cache, partial
from typing import Any

import pyarrow as pa
from pydantic import Field

from infuse.operators.common.base import Reject
from infuse.operators.clean import CleanConfig, Cleaner, OpSpec
from infuse.operators.clean.cleaner import OFFSET_MAP_TYPE
from infuse.operators.parsers.document import CHUNK_SCHEMA
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, table
from infuse.tasks.framework.shards import ShardStats, shard_rows
from infuse.tasks.framework.memo import REJECT, ROW, RowMemo, reject_cell, reject_from_cell, text_key

MEMO_SCHEMA = pa.schema([(ROW, pa.int64()), ("text", pa.string()), ("offset_map", OFFSET_MAP_TYPE),
                         (REJECT, pa.string())])


class CleanOptions(StepOptions, CleanConfig):
    """data-juicer mappers by registered name (or infuse's safe ones), in order, each with params and a gate."""

    ops: list[OpSpec] = Field(default_factory=lambda: CleanConfig.default().ops)


@lru_cache(maxsize=4)
def _cleaner(cfg_json: str) -> Cleaner:
    """One Cleaner per process and config: data-juicer ops are costly to build."""
    return Cleaner(CleanConfig.model_validate(json.loads(cfg_json)))


def clean_rows(cfg_json: str, rows: pa.Table) -> pa.Table:
    """One result row per chunk (MEMO_SCHEMA): its cleaned text and offset map, or its reject."""
    out, rejects = _cleaner(cfg_json).process_batch(rows)
    rejected = {r.id: reject_cell(r) for r in rejects}
    kept = {cid: i for i, cid in enumerate(out.column("chunk_id").to_pylist())} if out.num_rows else {}
    texts = out.column("text").to_pylist() if kept else []
    maps = out.column("offset_map").to_pylist() if kept else []
    result = {ROW: [], "text": [], "offset_map": [], REJECT: []}
    for i, cid in enumerate(rows.column("chunk_id").to_pylist()):
        j = kept.get(cid)
        result[ROW].append(i)
        result["text"].append(texts[j] if j is not None else None)
        result["offset_map"].append(maps[j] if j is not None else None)
        result[REJECT].append(rejected.get(cid) if j is None else None)
    return pa.table(result, schema=MEMO_SCHEMA)


def apply(batch: pa.Table, result: pa.Table) -> tuple[pa.Table, list[Reject]]:
    """The batch with its cleaned texts and offset maps, less the rejected chunks."""
    ids = batch.column("chunk_id").to_pylist()
    cells = result.column(REJECT).to_pylist()
    rejects = [reject_from_cell(ids[i], c) for i, c in enumerate(cells) if c is not None]
    keep = pa.array([c is None for c in cells], pa.bool_())
    out, result = batch.filter(keep), result.filter(keep)
    out = out.set_column(out.column_names.index("text"), out.schema.field("text"), result.column("text"))
    if "offset_map" in out.column_names:
        out = out.drop_columns(["offset_map"])
    return out.append_column(pa.field("offset_map", OFFSET_MAP_TYPE), result.column("offset_map")), rejects


class Clean(Step):
    name = "clean"
    stage = 30
    description = "data-juicer mappers on chunk text: emails, links, unicode, punctuation, whitespace, copyright"
    inputs = ("chunks",)
    outputs = {"chunks": table(CHUNK_SCHEMA)}
    Options = CleanOptions

    def run(self, ctx: StepContext) -> StepOutput:
        cfg_json = json.dumps({"ops": ctx.cfg["ops"]}, sort_keys=True)
        rejects: list[Reject] = []
        rows_in = ctx.input("chunks").rows
        shards = ShardStats()
        batches = (pa.Table.from_batches([b]) for b in ctx.batches("chunks", batch_size=shard_rows(ctx.runtime)))
        with RowMemo(ctx, MEMO_SCHEMA) as memo, ctx.writer("chunks", None, fallback_schema=CHUNK_SCHEMA) as w, \
                ctx.progress(rows_in, "clean", "chunks") as bar:
            for plan, computed in memo.map(partial(clean_rows, cfg_json), batches, text_key, ctx.runtime, shards):
                table_, shard_rejects = apply(plan.batch, memo.merge(plan, computed))
                w.write(table_)
                rejects += shard_rejects
                bar.update(plan.batch.num_rows)
            out = w.commit()
            reuse = memo.commit()
        notes = _cleaner(cfg_json).notes  # e.g. "punctuation_normalization_mapper: applied only where ..."
        return StepOutput({"chunks": out}, rejects, StepReport(
            rows_in=rows_in, kept=out.rows, unit_in="chunks", unit_out="chunks",
            markdown="\n".join([f"- {n}" for n in notes] + [f"- cleaned {reuse['memo_misses']} chunk(s), "
                                                             f"{reuse['memo_hits']} from the memo"]),
            stats={"notes": notes, **reuse, **shards.to_dict()}))
