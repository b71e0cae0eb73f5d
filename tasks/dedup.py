"""dedup: exact, SimHash and MinHash-LSH near-duplicates over `chunks`; one representative per cluster.

Signatures persist in a per-config signature cache, so a run after adding
documents signs only the new chunks and checks them against the stored ones.
"""
from __future__ import annotations

from typing import Any

import pyarrow as pa

from infuse.operators.base import stable_hash
from infuse.operators.dedup import DedupConfig, Deduper
from infuse.storage import ArtifactRef, ArtifactStore
from infuse.tasks.common import StepResult, StepSpec, finish, step_task

SPEC = StepSpec(
    name="dedup",
    inputs=("chunks",),
    outputs=("chunks",),
    description="exact, SimHash (data-juicer) and MinHash-LSH (datasketch) dedup; rejects name the kept chunk",
)
INDEX_STEP = "cache-dedup"


def _index_key(cfg: dict[str, Any]) -> str:
    return stable_hash({"code": SPEC.code_version(), "cfg": cfg})[:24]


def _prior_index(store: ArtifactStore, cfg: dict[str, Any], current_ids: set[str]) -> pa.Table | None:
    """The stored signatures of chunks still present in this run's input."""
    ref = store.committed(INDEX_STEP, _index_key(cfg), "signatures")
    if ref is None:
        return None
    index = store.read(ref)
    mask = pa.array([cid in current_ids for cid in index.column("chunk_id").to_pylist()], pa.bool_())
    return index.filter(mask)


@step_task(SPEC)
def dedup(store: ArtifactStore, key: str, cfg: dict[str, Any], inputs: dict[str, ArtifactRef],
          runtime: dict[str, Any]) -> StepResult:
    src = inputs["chunks"]
    config = DedupConfig.model_validate(cfg)
    current = set(store.read(src, columns=["chunk_id"]).column("chunk_id").to_pylist())
    deduper = Deduper(config, index=_prior_index(store, cfg, current))
    for batch in store.iter_batches(src, batch_size=20_000):
        deduper.add_batch(pa.Table.from_batches([batch]))
    _, rejects = deduper.resolve()
    with store.writer(SPEC.name, key, "chunks", store.schema(src)) as w:
        for batch in store.iter_batches(src, batch_size=20_000):
            w.write(deduper.apply_batch(pa.Table.from_batches([batch])))
        out = w.commit()
    store.write_table(INDEX_STEP, _index_key(cfg), "signatures", deduper.index())
    info = deduper.stats()
    md = (f"signatures computed / reused from the index: {info.get('computed')} / {info.get('loaded')}\n\n"
          f"clusters by stage: {info.get('clusters')}")
    stats = {"rows_in": src.rows, "kept": out.rows, "dedup": info,
             "_report": {"rows_in": src.rows, "kept": out.rows, "unit_in": "chunks", "unit_out": "chunks",
                         "extra_md": md}}
    return finish(store, SPEC, key, {"chunks": out}, [r.to_row(SPEC.name) for r in rejects], stats)
