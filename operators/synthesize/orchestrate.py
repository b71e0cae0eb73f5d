"""A whole synthesis run: the planned items in shards, resumed and retried.

Plain Python: where shards are kept is the caller's (a ShardStore), so the
same code runs under the flow, in a test or in a notebook.

- Items run in shards of `shard_size`; inside a shard, finished items are
  committed every `commit_every` items (fewer when items are slow, so a
  commit comes at least every `commit_every_s`), so a kill costs at most that
  much work. A shard's samples and statuses are committed together.
- A resumed shard runs only its items that have no status yet;
  `retry_failed` also re-runs its failed ones.
- The output does not depend on how the work was cut: samples and statuses
  are put in plan order, whatever ran when.
- With an item memo (see memo.py), an LLM item a run of any step key
  finished is taken from it instead of asked again: a new document costs
  only its own requests.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from infuse.operators.common.base import ProgressFn, Reject, check_stop
from infuse.operators.llm.base import LLMBackend
from infuse.operators.synthesize.config import SynthConfig
from infuse.operators.synthesize.memo import deps_hold, deps_of, keepable, memo_key
from infuse.operators.synthesize.schema import ITEM_STATUS_SCHEMA, QA_SCHEMA, WorkItem
from infuse.operators.synthesize.strategy import asks_llm
from infuse.operators.synthesize.waves import run_items


class ItemMemo(Protocol):
    def get(self, key: str) -> tuple[Any, dict[str, str]] | None:
        """(value, deps) kept under key, or None."""

    def unhit(self) -> None:
        """The last hit was stale."""

    def put(self, entries: list[tuple[str, Any, dict[str, str] | None]]) -> None:
        """Keep (key, value, deps) entries now."""


class ShardStore(Protocol):
    def load(self, name: str) -> tuple[pa.Table, pa.Table] | None:
        """(qa, status) of a committed shard, possibly of only some of its items; None when none."""

    def save(self, name: str, qa: pa.Table, status: pa.Table) -> None:
        """Commit a shard's samples and statuses as one unit."""


@dataclass
class SynthResult:
    qa: pa.Table
    status: pa.Table
    rejects: list[Reject]  # the skipped chunks and items, then the failed items with their raw output
    counts: dict[str, int] = field(default_factory=dict)
    by_strategy: dict[str, dict[str, int]] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    memo_keys: list[str] = field(default_factory=list)  # this run's LLM items, for the memo to keep


class _Shard:
    """The finished items of one shard: per item, its status row and its sample rows."""

    def __init__(self, items: list[WorkItem], prior: tuple[pa.Table, pa.Table] | None) -> None:
        self.items = items
        self.done: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
        if prior is not None:
            self.add(prior[0].to_pylist(), prior[1].to_pylist())

    def add(self, rows: list[dict[str, Any]], statuses: list[dict[str, Any]]) -> None:
        """Items' statuses and their samples, which follow in status order, n_samples per item."""
        pos = 0
        for st in statuses:
            self.done[st["item_id"]] = (st, rows[pos:pos + st["n_samples"]])
            pos += st["n_samples"]

    def tables(self) -> tuple[pa.Table, pa.Table]:
        order = [it.item_id for it in self.items if it.item_id in self.done]
        status = [self.done[i][0] for i in order]
        rows = [r for i in order for r in self.done[i][1]]
        return pa.Table.from_pylist(rows, schema=QA_SCHEMA), pa.Table.from_pylist(status, schema=ITEM_STATUS_SCHEMA)


class _Memo:
    """The synthesis view of an item memo (none: nothing is found or kept): keys from (item, LLM, source
    text), deps checked on use."""

    def __init__(self, memo: ItemMemo | None, llm_id: str, chunks: dict[str, Any], docs: dict[str, Any]) -> None:
        self.memo, self.llm_id, self.chunks, self.docs = memo, llm_id, chunks, docs
        self.keys: dict[str, str | None] = {}

    def key(self, item: WorkItem) -> str | None:
        if self.memo is None:
            return None
        if item.item_id not in self.keys:
            self.keys[item.item_id] = memo_key(item, self.llm_id, self.chunks, self.docs)
        return self.keys[item.item_id]

    def take(self, item: WorkItem, retry_failed: bool) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """(status, rows) kept for the item, unless a chunk it read changed or it failed and is to be retried."""
        key = self.key(item)
        found = self.memo.get(key) if key else None
        if found is None:
            return None
        (value, deps) = found
        if not deps_hold(deps, self.chunks) or (retry_failed and value["status"]["status"] == "failed"):
            self.memo.unhit()
            return None
        return value["status"], value["rows"]

    def keep(self, items: list[WorkItem], shard: "_Shard") -> None:
        entries = []
        for it in items:
            key = self.key(it)
            st_rows = shard.done.get(it.item_id)
            if key and st_rows and keepable(st_rows[0]):
                st, rows = st_rows
                entries.append((key, {"status": st, "rows": rows}, deps_of(it, rows, self.chunks)))
        if entries:
            self.memo.put(entries)


COUNTS = ("shards", "shards_resumed", "shards_run", "items_retried", "items_run", "commits", "items_from_memo")


class _Run:
    """One run's shards: each resumed from what is committed, its remaining items taken from the memo or
    run in groups, committed after each group."""

    def __init__(self, syn: SynthConfig, shards: ShardStore, backend: Callable[[], LLMBackend | None],
                 sources: tuple[dict[str, Any], dict[str, Any], Any], mem: _Memo, retry_failed: bool,
                 progress: ProgressFn | None) -> None:
        self.syn, self.shards, self.backend, self.mem = syn, shards, backend, mem
        self.chunks, self.docs, self.index = sources
        self.retry_failed, self.progress = retry_failed, progress
        self.counts = dict.fromkeys(COUNTS, 0)

    def shard(self, name: str, items: list[WorkItem]) -> tuple[pa.Table, pa.Table]:
        """The shard's (qa, status), running what it still lacks."""
        shard = _Shard(items, self.shards.load(name))
        self.counts["shards"] += 1
        todo = self._from_memo(name, shard, self._todo(shard))
        if self.progress and len(todo) < len(shard.items):
            self.progress(len(shard.items) - len(todo))
        if not todo:
            self.counts["shards_resumed"] += 1
        else:
            self.counts["shards_run"] += 1
            self._run_groups(name, shard, todo)
        return shard.tables()

    def _todo(self, shard: _Shard) -> list[WorkItem]:
        """Items with no status yet; with retry_failed, the failed ones too."""
        failed = {i for i, (st, _) in shard.done.items() if st["status"] == "failed"}
        todo = [it for it in shard.items
                if it.item_id not in shard.done or (self.retry_failed and it.item_id in failed)]
        self.counts["items_retried"] += sum(1 for it in todo if it.item_id in failed)
        return todo

    def _from_memo(self, name: str, shard: _Shard, todo: list[WorkItem]) -> list[WorkItem]:
        """Adds the items the memo holds to the shard; returns the rest."""
        kept = {it.item_id: self.mem.take(it, self.retry_failed) for it in todo}
        hits = [it for it in todo if kept[it.item_id] is not None]
        for it in hits:
            st, rows = kept[it.item_id]
            shard.add(rows, [st])
        self.counts["items_from_memo"] += len(hits)
        rest = [it for it in todo if kept[it.item_id] is None]
        if hits and not rest:
            self.shards.save(name, *shard.tables())
            self.counts["commits"] += 1
        return rest

    def _run_groups(self, name: str, shard: _Shard, todo: list[WorkItem]) -> None:
        """Run a shard's items in groups, committing the shard after each group."""
        pos, size = 0, self.syn.commit_every
        while pos < len(todo):
            check_stop()  # a stop request lands between groups: what is finished is committed
            group = todo[pos:pos + size]
            t0 = time.monotonic()
            needs_llm = any(asks_llm(it.strategy) for it in group)
            rows, statuses = run_items(group, self.backend() if needs_llm else None, self.syn, chunks=self.chunks,
                                       docs=self.docs, index=self.index)
            check_stop()  # stopped mid-group: its results may be cut short, so they are not committed
            shard.add(rows, [s.to_row() for s in statuses])
            self.shards.save(name, *shard.tables())
            self.mem.keep(group, shard)
            self.counts["commits"] += 1
            self.counts["items_run"] += len(group)
            if self.progress:
                self.progress(len(group))
            pos += len(group)
            per_item = (time.monotonic() - t0) / max(len(group), 1)
            if per_item > 0 and needs_llm:  # slow items: smaller groups, so a commit comes every commit_every_s
                size = max(1, min(self.syn.commit_every, int(self.syn.commit_every_s / per_item)))


def synthesize(items: list[WorkItem], skipped: list[Reject], syn: SynthConfig, shards: ShardStore,
               backend: Callable[[], LLMBackend | None], chunks: dict[str, Any], docs: dict[str, Any],
               index: Any = None, retry_failed: bool = False, progress: ProgressFn | None = None,
               memo: ItemMemo | None = None, llm_id: str = "") -> SynthResult:
    """Run every item, resuming what earlier runs committed. `backend()` is called only when an
    LLM item is about to run (a model load is costly and templates need none). With `memo`, LLM
    items found there (under `llm_id` and their source text) are not run; `result.memo_keys` are
    the keys of this run's LLM items, for the caller to keep (`ItemMemo.finish`)."""
    mem = _Memo(memo, llm_id, chunks, docs)
    run = _Run(syn, shards, backend, (chunks, docs, index), mem, retry_failed, progress)
    parts = [run.shard(f"shard-{n:05d}", items[start:start + syn.shard_size])
             for n, start in enumerate(range(0, len(items), syn.shard_size))]
    qa = pa.concat_tables([p[0] for p in parts]) if parts else QA_SCHEMA.empty_table()
    status = pa.concat_tables([p[1] for p in parts]) if parts else ITEM_STATUS_SCHEMA.empty_table()
    st_rows = status.to_pylist()
    rejects = list(skipped) + [_failed_item(s) for s in st_rows if s["status"] == "failed"]
    memo_keys = [k for k in (mem.key(it) for it in items) if k]
    return SynthResult(qa, status, rejects, run.counts, _by_strategy(st_rows), _usage(st_rows), memo_keys)


def _by_strategy(statuses: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Items, outcomes, samples and calls per strategy."""
    by: dict[str, dict[str, int]] = {}
    for s in statuses:
        d = by.setdefault(s["strategy"], {"items": 0, "done": 0, "failed": 0, "samples": 0, "calls": 0,
                                          "failed_calls": 0})
        d["items"] += 1
        d[s["status"]] += 1
        d["samples"] += s["n_samples"]
        d["calls"] += s["calls"]
        d["failed_calls"] += s["failed_calls"]
    return by


def _usage(statuses: list[dict[str, Any]]) -> dict[str, int]:
    return {"prompt_tokens": sum(s["usage_prompt_tokens"] for s in statuses),
            "completion_tokens": sum(s["usage_completion_tokens"] for s in statuses)}


def _failed_item(s: dict[str, Any]) -> Reject:
    """A failed work item as a reject; the raw LLM output is kept for inspection."""
    return Reject(s["item_id"], s["error_kind"] or "failed", s["error"] or "",
                  {"strategy": s["strategy"], "key": s["key"], "raw_text": s["raw_text"]})
