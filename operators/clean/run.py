"""The clean step's per-chunk work, as the row memo runs it (tasks/framework/memo.py): each chunk's
cleaned text and offset map, or its reject; memoized by the chunk's text, kind and format."""
from __future__ import annotations

import json
from functools import lru_cache

import pyarrow as pa

from infuse.operators.clean.cleaner import OFFSET_MAP_TYPE, Cleaner
from infuse.operators.clean.config import CleanConfig
from infuse.operators.common.base import Reject
from infuse.operators.common.result_rows import REJECT, ROW, reject_cell, split_rejects

MEMO_SCHEMA = pa.schema([(ROW, pa.int64()), ("text", pa.string()), ("offset_map", OFFSET_MAP_TYPE),
                         (REJECT, pa.string())])


@lru_cache(maxsize=4)
def cleaner(cfg_json: str) -> Cleaner:
    """One Cleaner per process and config: data-juicer ops are costly to build."""
    return Cleaner(CleanConfig.model_validate(json.loads(cfg_json)))


def clean_rows(cfg_json: str, rows: pa.Table) -> pa.Table:
    """One result row per chunk (MEMO_SCHEMA): its cleaned text and offset map, or its reject."""
    out, rejects = cleaner(cfg_json).process_batch(rows)
    rejected = {r.id: reject_cell(r) for r in rejects}
    kept = {cid: i for i, cid in enumerate(out.column("chunk_id").to_pylist())} if out.num_rows else {}
    texts = out.column("text").to_pylist() if kept else []
    maps = out.column("offset_map").to_pylist() if kept else []
    result: dict[str, list] = {ROW: [], "text": [], "offset_map": [], REJECT: []}
    for i, cid in enumerate(rows.column("chunk_id").to_pylist()):
        j = kept.get(cid)
        result[ROW].append(i)
        result["text"].append(texts[j] if j is not None else None)
        result["offset_map"].append(maps[j] if j is not None else None)
        result[REJECT].append(rejected.get(cid) if j is None else None)
    return pa.table(result, schema=MEMO_SCHEMA)


def cleaned(batch: pa.Table, result: pa.Table) -> tuple[pa.Table, list[Reject]]:
    """The batch with its cleaned texts and offset maps, less the rejected chunks."""
    keep, rejects = split_rejects(result, batch.column("chunk_id").to_pylist())
    out, result = batch.filter(keep), result.filter(keep)
    out = out.set_column(out.column_names.index("text"), out.schema.field("text"), result.column("text"))
    if "offset_map" in out.column_names:
        out = out.drop_columns(["offset_map"])
    return out.append_column(pa.field("offset_map", OFFSET_MAP_TYPE), result.column("offset_map")), rejects
