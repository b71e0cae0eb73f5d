"""dedup: exact, SimHash and MinHash-LSH near-duplicates over `chunks`; one representative per cluster.

Signatures persist in a per-config signature cache, so a run after adding
documents signs only the new chunks and checks them against the stored ones.
"""
from __future__ import annotations

from typing import Any

import pyarrow as pa

from infuse.operators.common.base import stable_hash
from infuse.operators.dedup import DedupConfig, Deduper
from infuse.storage import ArtifactStore
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, table

INDEX_STEP = "cache-dedup"


class DedupOptions(StepOptions, DedupConfig):
    """Exact, then SimHash and/or MinHash-LSH near-duplicates."""


class Dedup(Step):
    name = "dedup"
    stage = 50
    description = "exact, SimHash (data-juicer) and MinHash-LSH (datasketch) dedup; rejects name the kept chunk"
    inputs = ("chunks",)
    outputs = {"chunks": table()}
    Options = DedupOptions

    def _index_key(self, cfg: dict[str, Any]) -> str:
        return stable_hash({"code": self.code_version(), "cfg": self.key_config(cfg)})[:24]

    def _prior_index(self, store: ArtifactStore, cfg: dict[str, Any], current_ids: set[str]) -> pa.Table | None:
        """The stored signatures of chunks still present in this run's input."""
        ref = store.committed(INDEX_STEP, self._index_key(cfg), "signatures")
        if ref is None:
            return None
        index = store.read(ref)
        mask = pa.array([cid in current_ids for cid in index.column("chunk_id").to_pylist()], pa.bool_())
        return index.filter(mask)

    def run(self, ctx: StepContext) -> StepOutput:
        src = ctx.input("chunks")
        config = DedupConfig.model_validate(ctx.options.model_dump(include=set(DedupConfig.model_fields)))
        current = set(ctx.read("chunks", columns=["chunk_id"]).column("chunk_id").to_pylist())
        deduper = Deduper(config, index=self._prior_index(ctx.store, ctx.cfg, current))
        with ctx.progress(src.rows, "dedup: sign", "chunks") as bar:
            for batch in ctx.batches("chunks", batch_size=20_000):
                deduper.add_batch(pa.Table.from_batches([batch]))
                bar.update(batch.num_rows)
        _, rejects = deduper.resolve()
        with ctx.writer("chunks", ctx.store.schema(src)) as w:
            for batch in ctx.batches("chunks", batch_size=20_000):
                w.write(deduper.apply_batch(pa.Table.from_batches([batch])))
            out = w.commit()
        ctx.store.write_table(INDEX_STEP, self._index_key(ctx.cfg), "signatures", deduper.index())
        info = deduper.stats()
        md = (f"signatures computed / reused from the index: {info.get('computed')} / {info.get('loaded')}\n\n"
              f"clusters by stage: {info.get('clusters')}")
        return StepOutput({"chunks": out}, rejects, StepReport(
            rows_in=src.rows, kept=out.rows, unit_in="chunks", unit_out="chunks", markdown=md, stats={"dedup": info}))
