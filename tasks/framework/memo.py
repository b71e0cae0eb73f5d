"""Per-row memo across runs: a step's result for one input row, found again by a hash of that row.

Parse caches per file (cache-parse) and dedup keeps its signatures per chunk
(cache-dedup); chunk, clean and filter keep per-row results the same way, in
one Parquet table per step, code version and config:
`artifacts/cache-<step>/<version>/memo.parquet`, with a `_memo_key` column (a
hash of what the row's result depends on, e.g. its text, kind and format) and
the result's columns. A row has one result row or several (a document's
chunks); a row that yields nothing says so in a result row of its own (a
reject). A run reads the last memo, computes only the rows whose key
it lacks, and writes the memo anew for the rows it saw, so the memo follows
the corpus instead of growing. Corpus-level work (3σ bounds, dedup clusters)
is refitted by the step on every run.

    with RowMemo(ctx, schema) as memo:         # schema: `_row` plus the result's columns
        for plan, computed in memo.map(fn, batches, key_fn, ctx.runtime):
            result = memo.merge(plan, computed)   # the batch's result rows, in input order (with `_row`)
        reuse = memo.commit()                     # {"memo_hits": ..., "memo_misses": ...}

`fn(rows)` gets only the missed rows and returns their result rows, each with
`_row` (its index among those rows), at least one per row; it runs through `map_shards`, so under
Dask or Ray the misses fan out to the cluster.
"""
from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import xxhash

from infuse.operators.common.base import Reject, stable_hash
from infuse.tasks.framework.shards import ShardStats, map_shards

KEY = "_memo_key"
ROW = "_row"
REJECT = "_reject"  # a result row that is a reject: its reason, message and detail as JSON (the id is the row's)


def reject_cell(r: Reject) -> str:
    return json.dumps({"reason": r.reason, "message": r.message, "detail": r.detail}, ensure_ascii=False, default=str)


def reject_from_cell(item_id: str, cell: str) -> Reject:
    d = json.loads(cell)
    return Reject(item_id, d["reason"], d["message"], d.get("detail") or {})


def row_key(*parts: Any) -> str:
    """A 128-bit hash (xxh3) of the values a row's result depends on."""
    return xxhash.xxh3_128_hexdigest("\x1f".join(map(str, parts)).encode("utf-8", "surrogatepass"))


def text_key(rows: pa.Table) -> list[str]:
    """The key of a chunk-level result that depends on the chunk's text, kind and format (clean, filter stats)."""
    cols = [rows.column(c).to_pylist() if c in rows.column_names else [None] * rows.num_rows
            for c in ("text", "kind", "format")]
    return [row_key(*values) for values in zip(*cols)]


@dataclass
class Plan:
    """One batch split into memo hits and the rows left to compute."""

    batch: pa.Table
    keys: list[str]
    hits: dict[int, tuple[int, int]]  # batch row -> its result rows [start, end) in the previous memo
    misses: pa.Table  # the batch rows to compute, in batch order
    miss_rows: list[int]


class RowMemo:
    def __init__(self, ctx: Any, schema: pa.Schema) -> None:
        """The memo of ctx's step for its code and config (`--refresh` reads none, and writes it anew)."""
        self.store = ctx.store
        self.schema = schema
        self.step = f"cache-{ctx.step.name}"
        self.version = stable_hash({"code": ctx.step.code_version(), "cfg": ctx.step.key_config(ctx.cfg)})[:24]
        ref = None if ctx.fresh else self.store.committed(self.step, self.version, "memo")
        self.old = self.store.read(ref) if ref is not None else None
        if self.old is not None and self.old.schema.remove(self.old.schema.get_field_index(KEY)) != \
                schema.remove(schema.get_field_index(ROW)):
            self.old = None  # written by another layout: start over
        self._pos: dict[str, tuple[int, int]] = {}
        if self.old is not None:
            keys = self.old.column(KEY).to_pylist()
            start = 0
            for i in range(1, len(keys) + 1):
                if i == len(keys) or keys[i] != keys[start]:
                    self._pos.setdefault(keys[start], (start, i))
                    start = i
        self._writer = None
        self._seen: set[str] = set()
        self.hits = self.misses = 0

    # -- one batch -----------------------------------------------------------
    def plan(self, batch: pa.Table, keys: list[str]) -> Plan:
        hits = {i: self._pos[k] for i, k in enumerate(keys) if k in self._pos}
        miss_rows = [i for i in range(len(keys)) if i not in hits]
        self.hits += len(hits)
        self.misses += len(miss_rows)
        misses = batch.take(pa.array(miss_rows, pa.int64())) if len(miss_rows) < batch.num_rows else batch
        return Plan(batch, keys, hits, misses, miss_rows)

    def merge(self, plan: Plan, computed: pa.Table) -> pa.Table:
        """Result rows of the whole batch in input order, `_row` = the batch row; recorded for the next run."""
        comp_rows = computed.column(ROW).to_numpy(zero_copy_only=False) if computed.num_rows else np.zeros(0, int)
        if computed.num_rows:
            computed = computed.set_column(computed.column_names.index(ROW), ROW,
                                           pa.array(np.asarray(plan.miss_rows, np.int64)[comp_rows], pa.int64()))
        parts = []
        if plan.hits:
            ranges = [(i, s, e) for i, (s, e) in plan.hits.items()]
            idx = np.concatenate([np.arange(s, e) for _, s, e in ranges])
            rows = np.concatenate([np.full(e - s, i) for i, s, e in ranges]).astype(np.int64)
            if idx[-1] - idx[0] + 1 == len(idx) and (np.diff(idx) == 1).all():  # the usual case: a zero-copy slice
                old = self.old.slice(int(idx[0]), len(idx))
            else:
                old = self.old.take(pa.array(idx, pa.int64()))
            parts.append(old.drop_columns([KEY]).append_column(ROW, pa.array(rows, pa.int64())))
        if computed.num_rows:
            parts.append(computed.select([c for c in computed.column_names if c != KEY]))
        if not parts:
            return self.schema.empty_table()
        table = pa.concat_tables([p.select(self.schema.names).cast(self.schema) for p in parts])
        order = table.column(ROW).to_numpy(zero_copy_only=False)
        if len(order) > 1 and (np.diff(order) < 0).any():
            table = table.take(pa.array(np.argsort(order, kind="stable"), pa.int64()))
        self._record(table, plan.keys)
        return table

    def map(self, fn: Callable[[pa.Table], pa.Table], batches: Iterable[pa.Table],
            key_fn: Callable[[pa.Table], list[str]], runtime: dict[str, Any],
            stats: ShardStats | None = None) -> Iterator[tuple[Plan, pa.Table]]:
        """(plan, computed misses) per batch, in order; the misses are computed through map_shards."""
        pending: deque[Plan] = deque()

        def miss_tables() -> Iterator[pa.Table]:
            for batch in batches:
                plan = self.plan(batch, key_fn(batch))
                pending.append(plan)
                yield plan.misses

        for computed in map_shards(fn, miss_tables(), runtime, stats):
            yield pending.popleft(), computed

    # -- the next run's memo ---------------------------------------------------
    def _record(self, table: pa.Table, keys: list[str]) -> None:
        """Each key's result rows once (a text seen twice in a run is remembered once)."""
        rows = table.column(ROW).to_pylist()
        owner: dict[str, int] = {}  # key -> the one batch row whose result rows are recorded
        for r in rows:
            if keys[r] not in self._seen:
                owner.setdefault(keys[r], r)
        keep = [j for j, r in enumerate(rows) if owner.get(keys[r]) == r]
        self._seen.update(owner)
        if not keep:
            return
        out = table if len(keep) == len(rows) else table.take(pa.array(keep, pa.int64()))
        out = out.append_column(KEY, pa.array([keys[rows[j]] for j in keep], pa.string())).drop_columns([ROW])
        if self._writer is None:
            self._writer = self.store.writer(self.step, self.version, "memo", out.schema, row_group_size=20_000)
        self._writer.write(out)

    def commit(self) -> dict[str, int]:
        if self._writer is not None:
            self._writer.commit()
        return {"memo_hits": self.hits, "memo_misses": self.misses}

    def __enter__(self) -> "RowMemo":
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        """A failed step leaves the last memo as it was (and no temp file)."""
        if exc_type is not None and self._writer is not None:
            self._writer.abort()

