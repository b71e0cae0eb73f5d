"""A whole synthesis run: the plan (with its cap and its skips), then the shards, resumed and retried.

Plain Python: where shards are kept is the caller's (a ShardStore), so the
same code runs under the flow, in a test or in a notebook.

- Every input chunk's fate is written down: a chunk no strategy takes is a
  `no_work_item` reject, an LLM item over `max_llm_items` an `over_max_llm_items` one.
- Items run in shards of `shard_size`; inside a shard, finished items are
  committed every `commit_every` items (fewer when items are slow, so a
  commit comes at least every `commit_every_s`), so a kill costs at most that
  much work. A shard's samples and statuses are committed together.
- A resumed shard runs only its items that have no status yet;
  `retry_failed` also re-runs its failed ones.
- The output does not depend on how the work was cut: samples and statuses
  are put in plan order, whatever ran when.
- With an item memo (see `synth.memo`), an LLM item a run of any step key
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
from infuse.operators.synthesize.config import LLM_STRATEGIES, SynthConfig
from infuse.operators.synthesize.memo import deps_hold, deps_of, keepable, memo_key
from infuse.operators.synthesize.plan import plan
from infuse.operators.synthesize.run import run_items
from infuse.operators.synthesize.schema import ITEM_STATUS_SCHEMA, QA_SCHEMA, WorkItem


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


def plan_items(syn: SynthConfig, chunks: pa.Table, docs: pa.Table,
               max_llm_items: int | None = None) -> tuple[list[WorkItem], list[Reject]]:
    """The work items, and a reject for every chunk or item that gets no synthesis."""
    items = plan(chunks, docs, syn)
    skipped: list[Reject] = []
    capped_chunks: set[str] = set()
    if max_llm_items is not None:
        kept, n = [], 0
        for it in items:
            if it.strategy in LLM_STRATEGIES:
                if n >= max_llm_items:
                    skipped.append(Reject(it.item_id, "over_max_llm_items",
                                          f"{it.strategy} item not run: max_llm_items is {max_llm_items}",
                                          {"strategy": it.strategy, "chunk_id": it.chunk_id}))
                    capped_chunks.add(it.chunk_id)
                    continue
                n += 1
            kept.append(it)
        items = kept
    planned_chunks = {it.chunk_id for it in items if it.chunk_id}
    whole_docs = {it.doc_id for it in items if not it.chunk_id and it.doc_id}
    for cid, did, fmt, text in zip(*(chunks.column(c).to_pylist() for c in ("chunk_id", "doc_id", "format", "text"))):
        if cid in planned_chunks or cid in capped_chunks or did in whole_docs:
            continue
        skipped.append(Reject(cid, "no_work_item", f"no synthesis strategy took this {fmt} chunk "
                              f"(strategies for {fmt}: {syn.strategies_for(fmt) or 'none'}; "
                              f"min_chunk_chars {syn.min_chunk_chars})", {"chars": len(text or "")}))
    return items, skipped


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
            qa_rows, statuses = prior[0].to_pylist(), prior[1].to_pylist()
            pos = 0
            for st in statuses:  # samples are stored in status order, n_samples per item
                self.done[st["item_id"]] = (st, qa_rows[pos:pos + st["n_samples"]])
                pos += st["n_samples"]

    def add(self, rows: list[dict[str, Any]], statuses: list[dict[str, Any]]) -> None:
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
    """The synthesis view of an item memo: keys from (item, LLM, source text), deps checked on use."""

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


def synthesize(items: list[WorkItem], skipped: list[Reject], syn: SynthConfig, shards: ShardStore,
               backend: Callable[[], LLMBackend | None], chunks: dict[str, Any], docs: dict[str, Any],
               index: Any = None, retry_failed: bool = False, progress: ProgressFn | None = None,
               memo: ItemMemo | None = None, llm_id: str = "") -> SynthResult:
    """Run every item, resuming what earlier runs committed. `backend()` is called only when an
    LLM item is about to run (a model load is costly and templates need none). With `memo`, LLM
    items found there (under `llm_id` and their source text) are not run; `result.memo_keys` are
    the keys of this run's LLM items, for the caller to keep (`ItemMemo.finish`)."""
    counts = {"shards": 0, "shards_resumed": 0, "shards_run": 0, "items_retried": 0, "items_run": 0, "commits": 0,
              "items_from_memo": 0}
    mem = _Memo(memo, llm_id, chunks, docs)
    qa_parts, status_parts = [], []
    for n, start in enumerate(range(0, len(items), syn.shard_size)):
        name = f"shard-{n:05d}"
        shard = _Shard(items[start:start + syn.shard_size], shards.load(name))
        counts["shards"] += 1
        failed = {i for i, (st, _) in shard.done.items() if st["status"] == "failed"}
        todo = [it for it in shard.items if it.item_id not in shard.done or (retry_failed and it.item_id in failed)]
        counts["items_retried"] += sum(1 for it in todo if it.item_id in failed)
        if memo is not None and todo:
            kept = {it.item_id: mem.take(it, retry_failed) for it in todo}
            hits = [it for it in todo if kept[it.item_id] is not None]
            for it in hits:
                st, rows = kept[it.item_id]
                shard.add(rows, [st])
            counts["items_from_memo"] += len(hits)
            todo = [it for it in todo if kept[it.item_id] is None]
            if hits and not todo:
                shards.save(name, *shard.tables())
                counts["commits"] += 1
        if progress and len(todo) < len(shard.items):
            progress(len(shard.items) - len(todo))
        if not todo:
            counts["shards_resumed"] += 1
        else:
            counts["shards_run"] += 1
            _run_todo(todo, shard, name, syn, shards, backend, chunks, docs, index, counts, progress,
                      mem if memo is not None else None)
        qa, status = shard.tables()
        qa_parts.append(qa)
        status_parts.append(status)

    qa = pa.concat_tables(qa_parts) if qa_parts else QA_SCHEMA.empty_table()
    status = pa.concat_tables(status_parts) if status_parts else ITEM_STATUS_SCHEMA.empty_table()
    st_rows = status.to_pylist()
    rejects = list(skipped) + [_failed_item(s) for s in st_rows if s["status"] == "failed"]
    by_strategy: dict[str, dict[str, int]] = {}
    for s in st_rows:
        d = by_strategy.setdefault(s["strategy"], {"items": 0, "done": 0, "failed": 0, "samples": 0,
                                                   "calls": 0, "failed_calls": 0})
        d["items"] += 1
        d[s["status"]] += 1
        d["samples"] += s["n_samples"]
        d["calls"] += s["calls"]
        d["failed_calls"] += s["failed_calls"]
    usage = {"prompt_tokens": sum(s["usage_prompt_tokens"] for s in st_rows),
             "completion_tokens": sum(s["usage_completion_tokens"] for s in st_rows)}
    memo_keys = [k for k in (mem.key(it) for it in items) if k] if memo is not None else []
    return SynthResult(qa, status, rejects, counts, by_strategy, usage, memo_keys)


def _run_todo(todo: list[WorkItem], shard: _Shard, name: str, syn: SynthConfig, shards: ShardStore,
              backend: Callable[[], LLMBackend | None], chunks: dict[str, Any], docs: dict[str, Any], index: Any,
              counts: dict[str, int], progress: ProgressFn | None, mem: _Memo | None = None) -> None:
    """Run a shard's items in groups, committing the shard after each group."""
    pos, size = 0, syn.commit_every
    while pos < len(todo):
        check_stop()  # a stop request lands between groups: what is finished is committed
        group = todo[pos:pos + size]
        t0 = time.monotonic()
        needs_llm = any(it.strategy in LLM_STRATEGIES for it in group)
        rows, statuses = run_items(group, backend() if needs_llm else None, syn, chunks=chunks, docs=docs, index=index)
        check_stop()  # stopped mid-group: its results may be cut short, so they are not committed
        shard.add(rows, [s.to_row() for s in statuses])
        shards.save(name, *shard.tables())
        if mem is not None:
            mem.keep(group, shard)
        counts["commits"] += 1
        counts["items_run"] += len(group)
        if progress:
            progress(len(group))
        pos += len(group)
        per_item = (time.monotonic() - t0) / max(len(group), 1)
        if per_item > 0 and needs_llm:  # slow items: smaller groups, so a commit comes every commit_every_s
            size = max(1, min(syn.commit_every, int(syn.commit_every_s / per_item)))


def _failed_item(s: dict[str, Any]) -> Reject:
    """A failed work item as a reject; the raw LLM output is kept for inspection."""
    return Reject(s["item_id"], s["error_kind"] or "failed", s["error"] or "",
                  {"strategy": s["strategy"], "key": s["key"], "raw_text": s["raw_text"]})
