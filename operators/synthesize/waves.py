"""run_items: execute work items in waves, one backend.generate call per wave.

Pure function of its inputs (items, config, sources, backend outputs): the
orchestration runs it on groups of a shard's items and commits each group's
rows, so a crashed run resumes from the last commit. Every item ends `done` or
`failed` with an error kind and the raw model text; none goes missing.
"""
from __future__ import annotations

import json
from typing import Any, Callable

from infuse.operators.common.base import stable_hash
from infuse.operators.llm.base import ChatRequest, ChatResult, LLMBackend
from infuse.operators.synthesize.config import SynthConfig
from infuse.operators.synthesize.core import Context, Gen, ItemFailure, Track
from infuse.operators.synthesize.schema import Draft, ItemStatus, WorkItem
from infuse.operators.synthesize.strategy import asks_llm, augmenters, strategy


def _item_gen(item: WorkItem, ctx: Context, track: Track) -> Gen:
    """The item's base strategy, then the augmenters that apply to it, as one generator."""
    found = strategy(item.strategy)
    if found is None:
        raise ItemFailure("unknown_strategy", f"no strategy named {item.strategy!r}")
    drafts = list((yield from found.run(item, ctx, track)))
    extra: list[Draft] = []
    for aug in augmenters():
        if drafts and aug.applies(ctx.cfg, item.strategy):
            extra += yield from aug.augment(drafts, item, ctx, track)
    return drafts + extra


def _messages(d: Draft, system: str | None) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": system}] if system else []
    if d.turns:
        return (msgs if d.turns[0]["role"] != "system" else []) + list(d.turns)
    return msgs + [{"role": "user", "content": d.question}, {"role": "assistant", "content": d.answer}]


def draft_rows(item: WorkItem, drafts: list[Draft], cfg: SynthConfig, model: str) -> list[dict[str, Any]]:
    """The drafts as rows of QA_SCHEMA; a draft that names no generator was made by the item's LLM, or a template."""
    fallback = model if asks_llm(item.strategy) else "template"
    rows = []
    for i, d in enumerate(drafts):
        messages = _messages(d, cfg.system_message)
        rows.append({
            "sample_id": stable_hash([item.item_id, i, messages])[:32],
            "messages": messages,
            "doc_id": d.doc_id or item.doc_id,
            "chunk_id": d.chunk_id,
            "source_chunk_ids": list(d.source_chunk_ids),
            "span_start": d.span_start,
            "span_end": d.span_end,
            "strategy": d.strategy,
            "generator": d.generator if d.generator else fallback,
            "prompt_version": d.prompt_version,
            "usage_prompt_tokens": int(d.usage.get("prompt_tokens", 0) or 0),
            "usage_completion_tokens": int(d.usage.get("completion_tokens", 0) or 0),
            "lang": d.lang or item.lang,
            "format": d.format if d.format is not None else item.format,
            "cpt_text": bool(d.cpt_text),
            "meta": json.dumps(d.meta, ensure_ascii=False, sort_keys=True) if d.meta else "",
        })
    return rows


def request_seed(item_id: str, wave: int, index: int) -> int:
    """The sampling seed of an item's `index`-th request in its `wave`-th round (an item's waves are
    its own steps: the same in any shard or group). A retry is a later wave, so it samples anew."""
    return int(stable_hash([item_id, wave, index])[:8], 16)


def _status(item: WorkItem, track: Track, n: int, failure: tuple[str, str, str | None] | None = None) -> ItemStatus:
    kind, err, raw = failure or (track.error_kind, track.error, track.raw_text)
    if n == 0 and kind is None:
        kind, err = "no_samples", "the strategy produced no samples"
    return ItemStatus(item.item_id, "done" if n > 0 else "failed", kind, err, raw, n, item.strategy, item.key,
                      track.calls, track.failed_calls, int(track.usage.get("prompt_tokens", 0)),
                      int(track.usage.get("completion_tokens", 0)))


def _generate(backend: LLMBackend | None, batch: list[ChatRequest]) -> list[ChatResult]:
    """One backend call for the whole wave; a missing backend or a crash becomes per-request errors."""
    if backend is None:
        return [ChatResult(r.id, error="this strategy needs an LLM backend and none was given",
                           error_kind="no_backend") for r in batch]
    try:
        results = list(backend.generate(batch))
    except Exception as e:  # the backend promised not to raise; if it does, fail this wave's items, not the run
        return [ChatResult(r.id, error=f"backend raised {type(e).__name__}: {e}", error_kind="backend_error")
                for r in batch]
    if len(results) != len(batch):
        return [ChatResult(r.id, error=f"backend returned {len(results)} results for {len(batch)} requests",
                           error_kind="bad_response") for r in batch]
    by_id = {r.id: r for r in results}
    if len(by_id) == len(batch) and all(r.id in by_id for r in batch):
        return [by_id[r.id] for r in batch]
    return results  # ids not echoed: trust the order, as the protocol says


class _Waves:
    """The items' generators, advanced together: each wave sends every pending request in one call."""

    def __init__(self, ctx: Context, backend: LLMBackend | None) -> None:
        self.ctx, self.backend = ctx, backend
        self.by_id: dict[str, WorkItem] = {}
        self.tracks: dict[str, Track] = {}
        self.active: dict[str, tuple[Gen, list[ChatRequest]]] = {}
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.status: dict[str, ItemStatus] = {}
        # Sampling is seeded per request from (item, wave, request index), so a run is reproducible;
        # a seed in the backend's LLMConfig replaces this (every request then gets that one).
        self.derive_seeds = getattr(getattr(backend, "cfg", None), "seed", None) is None

    def start(self, item: WorkItem) -> None:
        if item.item_id in self.by_id:
            return  # the same item twice in a shard runs once
        self.by_id[item.item_id] = item
        self.tracks[item.item_id] = Track()
        gen = _item_gen(item, self.ctx, self.tracks[item.item_id])
        self.active[item.item_id] = (gen, [])
        self.settle(item, gen.__next__)

    def settle(self, item: WorkItem, step: Callable[[], list[ChatRequest]]) -> None:
        """Advance one item: its next requests, or its end (drafts as rows, or a failure)."""
        track = self.tracks[item.item_id]
        try:
            reqs = step()
        except StopIteration as stop:
            rows = draft_rows(item, list(stop.value or []), self.ctx.cfg, track.model or self.ctx.backend_model)
            self._end(item, rows, _status(item, track, len(rows)))
        except ItemFailure as e:
            self._end(item, [], _status(item, track, 0, (e.kind, str(e), e.raw)))
        except Exception as e:  # a bug or odd data in one item must not sink the shard
            self._end(item, [], _status(item, track, 0, ("internal_error", f"{type(e).__name__}: {e}", None)))
        else:
            self.active[item.item_id] = (self.active[item.item_id][0], list(reqs))

    def _end(self, item: WorkItem, rows: list[dict[str, Any]], status: ItemStatus) -> None:
        self.active.pop(item.item_id, None)
        self.rows[item.item_id] = rows
        self.status[item.item_id] = status

    def wave(self, n: int) -> None:
        """Send every active item's pending requests in one call, and hand each item its results."""
        batch: list[ChatRequest] = []
        owners: list[str] = []
        for iid, (_, reqs) in self.active.items():
            for j, r in enumerate(reqs):
                r.id = f"{iid[:16]}:w{n}:{j}:{r.id}"
                if self.derive_seeds and r.seed is None:
                    r.seed = request_seed(iid, n, j)
                batch.append(r)
                owners.append(iid)
        results = _generate(self.backend, batch) if batch else []
        per_item: dict[str, list[ChatResult]] = {iid: [] for iid in self.active}
        for iid, res in zip(owners, results):
            per_item[iid].append(res)
        for iid in list(self.active):
            gen = self.active[iid][0]
            self.settle(self.by_id[iid], lambda g=gen, r=per_item[iid]: g.send(r))

    def results(self) -> tuple[list[dict[str, Any]], list[ItemStatus]]:
        """Rows and statuses in item order."""
        rows = [r for iid in self.by_id for r in self.rows[iid]]
        return rows, [self.status[iid] for iid in self.by_id]


def run_items(items: list[WorkItem], backend: LLMBackend | None, cfg: SynthConfig,
              embed_fn: Callable[[list[str]], Any] | None = None, chunks: Any = None, docs: Any = None,
              index: Any = None) -> tuple[list[dict[str, Any]], list[ItemStatus]]:
    """Rows of QA_SCHEMA and one ItemStatus per item (in item order).

    chunks/docs: pa.Table, list of rows or {id: row}. RAG needs every chunk of
    the corpus (or a prebuilt `rag.build_index(...)` as `index`); the other
    strategies only the chunks/documents of their items.
    """
    ctx = Context(cfg, chunks, docs, embed_fn, index, getattr(backend, "model", "") if backend else "")
    waves = _Waves(ctx, backend)
    for item in items:
        waves.start(item)
    n = 0
    while waves.active:
        n += 1
        waves.wave(n)
    return waves.results()
