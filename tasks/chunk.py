"""chunk: `documents` -> heading-aware `chunks`, each citing its document by char offsets."""
from __future__ import annotations

from infuse.operators.base import OperatorError, Reject
from infuse.operators.chunk import ChunkConfig, chunk_document
from infuse.operators.document import CHUNK_SCHEMA
from infuse.tasks.base import Step, StepContext, StepOptions, StepOutput, StepReport, table


class ChunkOptions(StepOptions, ChunkConfig):
    """Chunk sizes in characters; checked together when the recipe is validated."""


class Chunk(Step):
    name = "chunk"
    stage = 20
    description = "split documents into ~500-char chunks on headings and sentence boundaries"
    inputs = ("documents",)
    outputs = {"chunks": table(CHUNK_SCHEMA)}
    Options = ChunkOptions

    def run(self, ctx: StepContext) -> StepOutput:
        config = ChunkConfig.model_validate(ctx.options.model_dump(include=set(ChunkConfig.model_fields)))
        rejects: list[Reject] = []
        docs_in = 0
        kinds: dict[str, int] = {}
        with ctx.writer("chunks") as w, ctx.progress(ctx.input("documents").rows, "chunk", "documents") as bar:
            for batch in ctx.batches("documents", batch_size=500):
                for doc in batch.to_pylist():
                    docs_in += 1
                    bar.update()
                    try:
                        rows = chunk_document(doc, config)
                    except OperatorError as e:
                        rejects.append(e.to_reject(doc["doc_id"]))
                        continue
                    except Exception as e:  # odd data in one document must not sink the run
                        rejects.append(Reject(doc["doc_id"], "chunk_failed", f"{doc['path']}: {type(e).__name__}: {e}"))
                        continue
                    if not rows:
                        rejects.append(Reject(doc["doc_id"], "no_chunks", f"{doc['path']}: no non-blank text to chunk"))
                        continue
                    for r in rows:
                        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
                    w.write(rows)
            chunks = w.commit()
        return StepOutput({"chunks": chunks}, rejects, StepReport(
            rows_in=docs_in, kept=docs_in - len(rejects), unit_in="documents", unit_out="documents",
            markdown=f"{chunks.rows} chunks: {kinds}",
            stats={"documents_in": docs_in, "chunks": chunks.rows, "chunks_by_kind": kinds}))
