"""clean: data-juicer mappers (and infuse's Chinese/Markdown-safe ones) over `chunks`, shard by shard.

Each chunk's cleaned text is memoized by its text, kind and format (tasks/framework/memo.py),
so a run after adding documents cleans only the new chunks.
"""
from __future__ import annotations

import json
from functools import partial

from pydantic import Field

from infuse.operators.clean import CleanConfig, OpSpec
from infuse.operators.clean.run import MEMO_SCHEMA, clean_rows, cleaned, cleaner
from infuse.operators.common.base import Reject
from infuse.operators.parsers.document import CHUNK_SCHEMA
from infuse.operators.common.result_rows import text_key
from infuse.tasks.framework.memo import RowMemo
from infuse.tasks.framework.shards import ShardStats, shard_rows
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, table


class CleanOptions(StepOptions, CleanConfig):
    """data-juicer mappers by registered name (or infuse's safe ones), in order, each with params and a gate."""

    ops: list[OpSpec] = Field(default_factory=lambda: CleanConfig.default().ops)


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
        shards = ShardStats()
        with RowMemo(ctx, MEMO_SCHEMA) as memo, ctx.writer("chunks", None, fallback_schema=CHUNK_SCHEMA) as w:
            for batch, result in memo.results("chunks", partial(clean_rows, cfg_json), text_key,
                                              batch_size=shard_rows(ctx.runtime), desc="clean", unit="chunks",
                                              stats=shards):
                chunks, batch_rejects = cleaned(batch, result)
                w.write(chunks)
                rejects += batch_rejects
            out = w.commit()
            reuse = memo.commit()
        notes = cleaner(cfg_json).notes  # e.g. "punctuation_normalization_mapper: applied only where ..."
        done = f"- cleaned {reuse['memo_misses']} chunk(s), {reuse['memo_hits']} from the memo"
        return StepOutput({"chunks": out}, rejects, StepReport(
            rows_in=ctx.input("chunks").rows, kept=out.rows, unit_in="chunks", unit_out="chunks",
            markdown="\n".join([f"- {n}" for n in notes] + [done]),
            stats={"notes": notes, **reuse, **shards.to_dict()}))
