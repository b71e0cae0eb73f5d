"""clean: data-juicer mappers (and infuse's Chinese/Markdown-safe ones) over `chunks`, shard by shard."""
from __future__ import annotations

import json
from functools import lru_cache, partial
from typing import Any

import pyarrow as pa

from infuse.operators.clean import CleanConfig, Cleaner
from infuse.operators.document import CHUNK_SCHEMA
from infuse.storage import ArtifactRef, ArtifactStore
from infuse.tasks.common import StepResult, StepSpec, finish, step_task
from infuse.tasks.shards import map_shards

SPEC = StepSpec(
    name="clean",
    inputs=("chunks",),
    outputs=("chunks",),
    description="data-juicer mappers on chunk text: emails, links, unicode, punctuation, whitespace, copyright",
)


@lru_cache(maxsize=4)
def _cleaner(cfg_json: str) -> Cleaner:
    """One Cleaner per process and config: data-juicer ops are costly to build."""
    return Cleaner(CleanConfig.model_validate(json.loads(cfg_json)))


def clean_shard(cfg_json: str, batch: pa.RecordBatch) -> tuple[pa.Table, list[dict[str, Any]]]:
    table, rejects = _cleaner(cfg_json).process_batch(pa.Table.from_batches([batch]))
    return table, [r.to_row(SPEC.name) for r in rejects]


@step_task(SPEC)
def clean(store: ArtifactStore, key: str, cfg: dict[str, Any], inputs: dict[str, ArtifactRef],
          runtime: dict[str, Any]) -> StepResult:
    cfg_json = json.dumps({"ops": cfg["ops"]}, sort_keys=True)
    rejects: list[dict[str, Any]] = []
    rows_in = inputs["chunks"].rows
    with store.writer(SPEC.name, key, "chunks", None, fallback_schema=CHUNK_SCHEMA) as w:
        shards = store.iter_batches(inputs["chunks"], batch_size=2_000)
        for table, shard_rejects in map_shards(partial(clean_shard, cfg_json), shards, runtime):
            w.write(table)
            rejects += shard_rejects
        out = w.commit()
    notes = _cleaner(cfg_json).notes  # e.g. "punctuation_normalization_mapper: applied only where ..."
    stats = {"rows_in": rows_in, "kept": out.rows, "notes": notes,
             "_report": {"rows_in": rows_in, "kept": out.rows, "unit_in": "chunks", "unit_out": "chunks",
                         "extra_md": "\n".join(f"- {n}" for n in notes)}}
    return finish(store, SPEC, key, {"chunks": out}, rejects, stats)
