"""The row format of per-row results (chunk, clean, filter): what an operator returns for a batch of input
rows, and what the step's memo (tasks/framework/memo.py) keeps by row.

A result row carries `_row` (the index of its input row in the batch; a row may have several results, e.g. a
document's chunks) and `_reject` (null, or the reject it is, as JSON: a row that yields nothing says so in a
result row of its own). `row_key` is the hash a memo finds a row's result by.
"""
from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import xxhash

from infuse.operators.common.base import Reject

ROW = "_row"
REJECT = "_reject"  # a result row that is a reject: its reason, message and detail as JSON (the id is the row's)


def reject_cell(r: Reject) -> str:
    """A reject as the `_reject` cell of its result row (its id is the input row's, so it is not kept)."""
    return json.dumps({"reason": r.reason, "message": r.message, "detail": r.detail}, ensure_ascii=False, default=str)


def reject_from_cell(item_id: str, cell: str) -> Reject:
    d = json.loads(cell)
    return Reject(item_id, d["reason"], d["message"], d.get("detail") or {})


def row_key(*parts: Any) -> str:
    """A 128-bit hash (xxh3) of the values a row's result depends on."""
    return xxhash.xxh3_128_hexdigest("\x1f".join(map(str, parts)).encode("utf-8", "surrogatepass"))


def split_rejects(result: pa.Table, ids: list[str]) -> tuple[pa.Array, list[Reject]]:
    """The mask of the result rows that are results, and the rejects the others hold, each under the id
    of its input row (`ids`: the batch's, indexed by `_row`)."""
    cells = result.column(REJECT).to_pylist()
    rows = result.column(ROW).to_pylist()
    rejects = [reject_from_cell(ids[rows[j]], c) for j, c in enumerate(cells) if c is not None]
    return pa.array([c is None for c in cells], pa.bool_()), rejects


def text_key(rows: pa.Table) -> list[str]:
    """The key of a chunk-level result that depends on the chunk's text, kind and format (clean, filter stats)."""
    cols = [rows.column(c).to_pylist() if c in rows.column_names else [None] * rows.num_rows
            for c in ("text", "kind", "format")]
    return [row_key(*values) for values in zip(*cols)]
