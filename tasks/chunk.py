"""chunk: `documents` -> heading-aware `chunks`, each citing its document by char offsets.

Each document's chunks are memoized by a hash of the document row (tasks.memo),
so a run after adding documents chunks only the new ones.
"""
from __future__ import annotations

import json
from functools import partial

import pyarrow as pa

from infuse.operators.common.base import OperatorError, Reject
from infuse.operators.chunk.chunker import ChunkConfig, chunk_document
from infuse.operators.parsers.document import CHUNK_SCHEMA
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, table
from infuse.tasks.framework.memo import REJECT, ROW, RowMemo, reject_cell, reject_from_cell, row_key

MEMO_SCHEMA = pa.schema([pa.field(ROW, pa.int64()), *CHUNK_SCHEMA, pa.field(REJECT, pa.string())])


class ChunkOptions(StepOptions, ChunkConfig):
    """Chunk sizes in characters; checked together when the recipe is validated."""


def chunk_rows(cfg_json: str, docs: pa.Table) -> pa.Table:
    """Result rows (MEMO_SCHEMA) for documents: each one's chunks, or one row with its reject."""
    config = ChunkConfig.model_validate_json(cfg_json)
    out = []
    for i, doc in enumerate(docs.to_pylist()):
        try:
            rows = chunk_document(doc, config)
            reject = None if rows else Reject(doc["doc_id"], "no_chunks",
                                              f"{doc['path']}: no text to chunk but blanks and headings")
        except OperatorError as e:
            rows, reject = [], e.to_reject(doc["doc_id"])
        except Exception as e:  # odd data in one document must not sink the run
            rows, reject = [], Reject(doc["doc_id"], "chunk_failed", f"{doc['path']}: {type(e).__name__}: {e}")
        out += [{ROW: i, **r} for r in rows] or [{ROW: i, REJECT: reject_cell(reject)}]
    return pa.Table.from_pylist(out, schema=MEMO_SCHEMA)


def document_key(docs: pa.Table) -> list[str]:
    """A document's chunks depend on all of its row (id, path, format, text, sections, pages, metadata)."""
    return [row_key(json.dumps(d, sort_keys=True, ensure_ascii=False, default=str)) for d in docs.to_pylist()]


class Chunk(Step):
    name = "chunk"
    stage = 20
    description = "split documents into ~500-char chunks on headings and sentence boundaries"
    inputs = ("documents",)
    outputs = {"chunks": table(CHUNK_SCHEMA)}
    Options = ChunkOptions

    def run(self, ctx: StepContext) -> StepOutput:
        cfg_json = ctx.options.model_dump_json(include=set(ChunkConfig.model_fields))
        rejects: list[Reject] = []
        docs_in = 0
        kinds: dict[str, int] = {}
        batches = (pa.Table.from_batches([b]) for b in ctx.batches("documents", batch_size=500))
        with RowMemo(ctx, MEMO_SCHEMA) as memo, ctx.writer("chunks") as w, \
                ctx.progress(ctx.input("documents").rows, "chunk", "documents") as bar:
            for plan, computed in memo.map(partial(chunk_rows, cfg_json), batches, document_key, ctx.runtime):
                result = memo.merge(plan, computed)
                docs_in += plan.batch.num_rows
                bar.update(plan.batch.num_rows)
                cells = result.column(REJECT).to_pylist()
                ids = plan.batch.column("doc_id").to_pylist()
                rows_of = result.column(ROW).to_pylist()
                rejects += [reject_from_cell(ids[rows_of[j]], c) for j, c in enumerate(cells) if c is not None]
                chunks = result.filter(pa.array([c is None for c in cells], pa.bool_())).select(CHUNK_SCHEMA.names)
                for kind in chunks.column("kind").to_pylist():
                    kinds[kind] = kinds.get(kind, 0) + 1
                w.write(chunks)
            chunks = w.commit()
            reuse = memo.commit()
        return StepOutput({"chunks": chunks}, rejects, StepReport(
            rows_in=docs_in, kept=docs_in - len(rejects), unit_in="documents", unit_out="documents",
            markdown=f"{chunks.rows} chunks: {kinds}; chunked {reuse['memo_misses']} document(s), "
                     f"{reuse['memo_hits']} from the memo",
            stats={"documents_in": docs_in, "chunks": chunks.rows, "chunks_by_kind": kinds, **reuse}))
