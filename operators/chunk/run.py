"""The chunk step's per-document work, as the row memo runs it (tasks/framework/memo.py): each document's
chunks, or one result row with its reject; memoized by a hash of the whole document row."""
from __future__ import annotations

import json

import pyarrow as pa

from infuse.operators.chunk.chunker import ChunkConfig, chunk_document
from infuse.operators.common.base import OperatorError, Reject
from infuse.operators.parsers.document import CHUNK_SCHEMA
from infuse.operators.common.result_rows import REJECT, ROW, reject_cell, row_key, split_rejects

MEMO_SCHEMA = pa.schema([pa.field(ROW, pa.int64()), *CHUNK_SCHEMA, pa.field(REJECT, pa.string())])


def _chunk_one(doc: dict, config: ChunkConfig) -> tuple[list[dict], Reject | None]:
    """One document's chunks, or its reject: odd data in one document must not sink the run."""
    try:
        rows = chunk_document(doc, config)
    except OperatorError as e:
        return [], e.to_reject(doc["doc_id"])
    except Exception as e:
        return [], Reject(doc["doc_id"], "chunk_failed", f"{doc['path']}: {type(e).__name__}: {e}")
    if not rows:
        return [], Reject(doc["doc_id"], "no_chunks", f"{doc['path']}: no text to chunk but blanks and headings")
    return rows, None


def chunk_rows(cfg_json: str, docs: pa.Table) -> pa.Table:
    """Result rows (MEMO_SCHEMA) for documents: each one's chunks, or one row with its reject."""
    config = ChunkConfig.model_validate_json(cfg_json)
    out = []
    for i, doc in enumerate(docs.to_pylist()):
        rows, reject = _chunk_one(doc, config)
        out += [{ROW: i, **r} for r in rows] or [{ROW: i, REJECT: reject_cell(reject)}]
    return pa.Table.from_pylist(out, schema=MEMO_SCHEMA)


def document_key(docs: pa.Table) -> list[str]:
    """A document's chunks depend on all of its row (id, path, format, text, sections, pages, metadata)."""
    return [row_key(json.dumps(d, sort_keys=True, ensure_ascii=False, default=str)) for d in docs.to_pylist()]


def chunks_of(batch: pa.Table, result: pa.Table) -> tuple[pa.Table, list[Reject]]:
    """A batch's chunks (CHUNK_SCHEMA) from its result rows, and the documents rejected."""
    keep, rejects = split_rejects(result, batch.column("doc_id").to_pylist())
    return result.filter(keep).select(CHUNK_SCHEMA.names), rejects
