"""clean: data-juicer mappers (and infuse's Chinese/Markdown-safe ones) over `chunks`, shard by shard."""
from __future__ import annotations

import json
from functools import lru_cache, partial
from typing import Any

import pyarrow as pa
from pydantic import Field

from infuse.operators.base import Reject
from infuse.operators.clean import CleanConfig, Cleaner, OpSpec
from infuse.operators.document import CHUNK_SCHEMA
from infuse.tasks.base import Step, StepContext, StepOptions, StepOutput, StepReport, table
from infuse.tasks.shards import ShardStats, map_shards, shard_rows


class CleanOptions(StepOptions, CleanConfig):
    """data-juicer mappers by registered name (or infuse's safe ones), in order, each with params and a gate."""

    ops: list[OpSpec] = Field(default_factory=lambda: CleanConfig.default().ops)


@lru_cache(maxsize=4)
def _cleaner(cfg_json: str) -> Cleaner:
    """One Cleaner per process and config: data-juicer ops are costly to build."""
    return Cleaner(CleanConfig.model_validate(json.loads(cfg_json)))


def clean_shard(cfg_json: str, batch: pa.RecordBatch) -> tuple[pa.Table, list[Reject]]:
    return _cleaner(cfg_json).process_batch(pa.Table.from_batches([batch]))


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
        with ctx.writer("chunks", None, fallback_schema=CHUNK_SCHEMA) as w, \
                ctx.progress(rows_in, "clean", "chunks") as bar:
            for table_, shard_rejects in map_shards(partial(clean_shard, cfg_json),
                                                    ctx.batches("chunks", batch_size=shard_rows(ctx.runtime)),
                                                    ctx.runtime, shards):
                w.write(table_)
                rejects += shard_rejects
                bar.update(table_.num_rows + len(shard_rejects))
            out = w.commit()
        notes = _cleaner(cfg_json).notes  # e.g. "punctuation_normalization_mapper: applied only where ..."
        return StepOutput({"chunks": out}, rejects, StepReport(
            rows_in=rows_in, kept=out.rows, unit_in="chunks", unit_out="chunks",
            markdown="\n".join(f"- {n}" for n in notes), stats={"notes": notes, **shards.to_dict()}))
