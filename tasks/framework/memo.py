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
        for batch, result in memo.results("chunks", fn, key_fn, batch_size=..., desc=..., unit=...):
            ...                                   # result: the batch's result rows, in input order (`_row`)
        reuse = memo.commit()                     # {"memo_hits": ..., "memo_misses": ...}

`fn(rows)` gets only the missed rows and returns their result rows, each with
`_row` (its index among those rows), at least one per row; it runs through `map_shards`, so under
Dask or Ray the misses fan out to the cluster. The row format (`_row`, `_reject`, and `split_rejects`, which
parts the result rows that are rejects from the others) is operators/common/result_rows.py, so that the
operators can return it.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from infuse.operators.common.base import stable_hash
from infuse.operators.common.result_rows import ROW
from infuse.tasks.framework.shards import ShardStats, map_shards

KEY = "_memo_key"


def memo_version(step: Any, cfg: dict[str, Any]) -> str:
    """The version a step's caches are kept under: its code and the config its results depend on."""
    return stable_hash({"code": step.code_version(), "cfg": step.key_config(cfg)})[:24]


@dataclass
class Plan:
    """One batch split into memo hits and the rows left to compute."""

    batch: pa.Table
    keys: list[str]
    hits: dict[int, tuple[int, int]]  # batch row -> its result rows [start, end) in the previous memo
    misses: pa.Table  # the batch rows to compute, in batch order
    miss_rows: list[int]


class RowMemo:
    """One step's per-row results: the last run's, read back by key, and this run's, written for the next."""

    def __init__(self, ctx: Any, schema: pa.Schema) -> None:
        """The memo of ctx's step for its code and config (`--refresh` reads none, and writes it anew)."""
        self.ctx, self.store = ctx, ctx.store
        self.schema = schema
        self.step = f"cache-{ctx.step.name}"
        self.version = memo_version(ctx.step, ctx.cfg)
        self.old = None if ctx.fresh else self._last_memo()
        self._pos = _key_ranges(self.old.column(KEY).to_pylist()) if self.old is not None else {}
        self._writer = None
        self._seen: set[str] = set()
        self.hits = self.misses = 0

    def _last_memo(self) -> pa.Table | None:
        """The memo the last run wrote, unless its columns differ from this schema's (another layout)."""
        ref = self.store.committed(self.step, self.version, "memo")
        if ref is None:
            return None
        old = self.store.read(ref)
        same = old.schema.remove(old.schema.get_field_index(KEY)) == self.schema.remove(
            self.schema.get_field_index(ROW))
        return old if same else None

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
        parts = []
        if plan.hits:
            parts.append(self._hit_rows(plan))
        if computed.num_rows:
            parts.append(_renumbered(computed, plan.miss_rows))
        if not parts:
            return self.schema.empty_table()
        table = _by_row(pa.concat_tables([p.select(self.schema.names).cast(self.schema) for p in parts]))
        self._record(table, plan.keys)
        return table

    def _hit_rows(self, plan: Plan) -> pa.Table:
        """The last memo's result rows of the batch's hits, `_row` = their batch row."""
        ranges = [(i, s, e) for i, (s, e) in plan.hits.items()]
        idx = np.concatenate([np.arange(s, e) for _, s, e in ranges])
        rows = np.concatenate([np.full(e - s, i) for i, s, e in ranges]).astype(np.int64)
        if idx[-1] - idx[0] + 1 == len(idx) and (np.diff(idx) == 1).all():  # the usual case: a zero-copy slice
            old = self.old.slice(int(idx[0]), len(idx))
        else:
            old = self.old.take(pa.array(idx, pa.int64()))
        return old.drop_columns([KEY]).append_column(ROW, pa.array(rows, pa.int64()))

    def results(self, source: str, fn: Callable[[pa.Table], pa.Table], key_fn: Callable[[pa.Table], list[str]],
                batch_size: int, desc: str, unit: str,
                stats: ShardStats | None = None) -> Iterator[tuple[pa.Table, pa.Table]]:
        """(batch, its result rows) for each batch of the step's input `source`, in order, with a progress
        bar; only the memo's misses are computed, through map_shards."""
        ctx = self.ctx
        batches = (pa.Table.from_batches([b]) for b in ctx.batches(source, batch_size=batch_size))
        with ctx.progress(ctx.input(source).rows, desc, unit) as bar:
            for plan, computed in self._map(fn, batches, key_fn, stats):
                yield plan.batch, self.merge(plan, computed)
                bar.update(plan.batch.num_rows)

    def _map(self, fn: Callable[[pa.Table], pa.Table], batches: Iterable[pa.Table],
             key_fn: Callable[[pa.Table], list[str]], stats: ShardStats | None) -> Iterator[tuple[Plan, pa.Table]]:
        """(plan, computed misses) per batch, in order; the misses are computed through map_shards."""
        pending: deque[Plan] = deque()

        def miss_tables() -> Iterator[pa.Table]:
            for batch in batches:
                plan = self.plan(batch, key_fn(batch))
                pending.append(plan)
                yield plan.misses

        for computed in map_shards(fn, miss_tables(), self.ctx.runtime, stats):
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
        """Write this run's memo (it replaces the last one); returns how many rows were found and computed."""
        if self._writer is not None:
            self._writer.commit()
        return {"memo_hits": self.hits, "memo_misses": self.misses}

    def __enter__(self) -> "RowMemo":
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        """A failed step leaves the last memo as it was (and no temp file)."""
        if exc_type is not None and self._writer is not None:
            self._writer.abort()


def _key_ranges(keys: list[str]) -> dict[str, tuple[int, int]]:
    """Each key's result rows [start, end) in a memo, whose rows of one key are adjacent."""
    pos: dict[str, tuple[int, int]] = {}
    start = 0
    for i in range(1, len(keys) + 1):
        if i == len(keys) or keys[i] != keys[start]:
            pos.setdefault(keys[start], (start, i))
            start = i
    return pos


def _renumbered(computed: pa.Table, miss_rows: list[int]) -> pa.Table:
    """Computed result rows with `_row` turned from the index among the misses into the batch row."""
    comp_rows = computed.column(ROW).to_numpy(zero_copy_only=False)
    computed = computed.set_column(computed.column_names.index(ROW), ROW,
                                   pa.array(np.asarray(miss_rows, np.int64)[comp_rows], pa.int64()))
    return computed.select([c for c in computed.column_names if c != KEY])


def _by_row(table: pa.Table) -> pa.Table:
    """The result rows in batch order (stable: a row's own result rows keep theirs)."""
    order = table.column(ROW).to_numpy(zero_copy_only=False)
    if len(order) > 1 and (np.diff(order) < 0).any():
        return table.take(pa.array(np.argsort(order, kind="stable"), pa.int64()))
    return table
