"""dedup: exact, SimHash and MinHash-LSH near-duplicates over `chunks`; one representative per cluster.

Signatures persist in a per-config signature index (operators/dedup/run.py), so a run after adding
documents signs only the new chunks and checks them against the stored ones.
"""
from __future__ import annotations

import pyarrow as pa

from infuse.operators.dedup import DedupConfig, Deduper
from infuse.operators.dedup.run import prior_index, report_markdown, save_index
from infuse.tasks.framework.memo import memo_version
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, table


class DedupOptions(StepOptions, DedupConfig):
    """Exact, then SimHash and/or MinHash-LSH near-duplicates."""


class Dedup(Step):
    name = "dedup"
    stage = 50
    description = "exact, SimHash (data-juicer) and MinHash-LSH (datasketch) dedup; rejects name the kept chunk"
    inputs = ("chunks",)
    outputs = {"chunks": table()}
    Options = DedupOptions

    def run(self, ctx: StepContext) -> StepOutput:
        src, version = ctx.input("chunks"), memo_version(self, ctx.cfg)
        config = DedupConfig.model_validate(ctx.options.model_dump(include=set(DedupConfig.model_fields)))
        current = set(ctx.read("chunks", columns=["chunk_id"]).column("chunk_id").to_pylist())
        deduper = Deduper(config, index=prior_index(ctx.store, version, current))
        with ctx.progress(src.rows, "dedup: sign", "chunks") as bar:
            for batch in ctx.batches("chunks", batch_size=20_000):
                deduper.add_batch(pa.Table.from_batches([batch]))
                bar.update(batch.num_rows)
        _, rejects = deduper.resolve()
        with ctx.writer("chunks", ctx.store.schema(src)) as w:
            for batch in ctx.batches("chunks", batch_size=20_000):
                w.write(deduper.apply_batch(pa.Table.from_batches([batch])))
            out = w.commit()
        save_index(ctx.store, version, deduper.index())
        info = deduper.stats()
        return StepOutput({"chunks": out}, rejects, StepReport(
            rows_in=src.rows, kept=out.rows, unit_in="chunks", unit_out="chunks", markdown=report_markdown(info),
            stats={"dedup": info}))
