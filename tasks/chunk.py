"""chunk: `documents` -> heading-aware `chunks`, each citing its document by char offsets.

Each document's chunks are memoized by a hash of the document row (tasks/framework/memo.py),
so a run after adding documents chunks only the new ones.
"""
from __future__ import annotations

from collections import Counter
from functools import partial

from infuse.operators.chunk.chunker import ChunkConfig
from infuse.operators.chunk.run import MEMO_SCHEMA, chunk_rows, chunks_of, document_key
from infuse.operators.common.base import Reject
from infuse.operators.parsers.document import CHUNK_SCHEMA
from infuse.tasks.framework.memo import RowMemo
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, table


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
        fn = partial(chunk_rows, ctx.options.model_dump_json(include=set(ChunkConfig.model_fields)))
        rejects: list[Reject] = []
        kinds: Counter[str] = Counter()
        with RowMemo(ctx, MEMO_SCHEMA) as memo, ctx.writer("chunks") as w:
            for batch, result in memo.results("documents", fn, document_key, batch_size=500, desc="chunk",
                                              unit="documents"):
                chunks, batch_rejects = chunks_of(batch, result)
                rejects += batch_rejects
                kinds.update(chunks.column("kind").to_pylist())
                w.write(chunks)
            chunks = w.commit()
            reuse = memo.commit()
        docs_in, kinds_ = ctx.input("documents").rows, dict(kinds)
        return StepOutput({"chunks": chunks}, rejects, StepReport(
            rows_in=docs_in, kept=docs_in - len(rejects), unit_in="documents", unit_out="documents",
            markdown=f"{chunks.rows} chunks: {kinds_}; chunked {reuse['memo_misses']} document(s), "
                     f"{reuse['memo_hits']} from the memo",
            stats={"documents_in": docs_in, "chunks": chunks.rows, "chunks_by_kind": kinds_, **reuse}))
