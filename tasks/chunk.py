"""chunk: `documents` -> heading-aware `chunks`, each citing its document by char offsets."""
from __future__ import annotations

from typing import Any

from infuse.operators.base import OperatorError
from infuse.operators.chunk import ChunkConfig, chunk_document
from infuse.operators.document import CHUNK_SCHEMA
from infuse.storage import ArtifactRef, ArtifactStore
from infuse.tasks.common import StepResult, StepSpec, finish, step_task

SPEC = StepSpec(
    name="chunk",
    inputs=("documents",),
    outputs=("chunks",),
    description="split documents into ~500-char chunks on headings and sentence boundaries",
)


@step_task(SPEC)
def chunk(store: ArtifactStore, key: str, cfg: dict[str, Any], inputs: dict[str, ArtifactRef],
          runtime: dict[str, Any]) -> StepResult:
    config = ChunkConfig(**cfg)
    config.validate()  # a bad recipe value fails the step here, before any work
    rejects: list[dict[str, Any]] = []
    docs_in = 0
    kinds: dict[str, int] = {}
    with store.writer(SPEC.name, key, "chunks", CHUNK_SCHEMA) as w:
        for batch in store.iter_batches(inputs["documents"], batch_size=500):
            for doc in batch.to_pylist():
                docs_in += 1
                try:
                    rows = chunk_document(doc, config)
                except OperatorError as e:
                    rejects.append(e.to_reject(doc["doc_id"]).to_row(SPEC.name))
                    continue
                except Exception as e:  # odd data in one document must not sink the run
                    rejects.append({"id": doc["doc_id"], "step": SPEC.name, "reason": "chunk_failed",
                                    "message": f"{doc['path']}: {type(e).__name__}: {e}", "detail": "{}"})
                    continue
                if not rows:
                    rejects.append({"id": doc["doc_id"], "step": SPEC.name, "reason": "no_chunks",
                                    "message": f"{doc['path']}: no non-blank text to chunk", "detail": "{}"})
                    continue
                for r in rows:
                    kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
                w.write(rows)
        chunks = w.commit()
    stats = {"documents_in": docs_in, "chunks": chunks.rows, "chunks_by_kind": kinds,
             "_report": {"rows_in": docs_in, "kept": docs_in - len(rejects), "unit_in": "documents",
                         "unit_out": "documents", "extra_md": f"{chunks.rows} chunks: {kinds}"}}
    return finish(store, SPEC, key, {"chunks": chunks}, rejects, stats)
