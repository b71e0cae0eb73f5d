"""run_items: execute work items in waves, one backend.generate call per wave.

Pure function of its inputs (items, config, sources, backend outputs): the
task layer runs it on shards of items and appends each shard's rows, so a
crashed run resumes from the last shard. Every item ends `done` or `failed`
with an error kind and the raw model text; none goes missing.
"""
from __future__ import annotations

import json
from typing import Any, Callable

from infuse.operators.common.base import stable_hash
from infuse.operators.llm.base import ChatRequest, ChatResult, LLMBackend
from infuse.operators.synthesize import (atomic_facts, code_tasks, continuation, dialogue, evol_instruct, identity,
                                    facts, log_tasks, paraphrase, qa, raft, rag, record_template, rewrite, section_template,
                                    self_instruct, summary)
from infuse.operators.synthesize.config import SynthConfig
from infuse.operators.synthesize.core import Context, Gen, ItemFailure, Track
from infuse.operators.synthesize.schema import Draft, ItemStatus, WorkItem

LLM_RUNNERS: dict[str, Callable[[WorkItem, Context, Track], Gen]] = {
    "qa": qa.run,
    "rag": rag.run,
    "self_instruct": self_instruct.run,
    "code_tasks": code_tasks.run,
    "log_tasks": log_tasks.run,
    "dialogue": dialogue.run,
    "summary": summary.run,
    "atomic_facts": atomic_facts.run,
    "rewrite": rewrite.run,
    "raft": raft.run,
}
TEMPLATE_MAKERS: dict[str, Callable[[WorkItem, Context, Track], list[Draft]]] = {
    "facts": facts.make,
    "record_template": record_template.make,
    "section_template": section_template.make,
    "continuation": continuation.make,
    "identity": identity.make,
}


def _item_gen(item: WorkItem, ctx: Context, track: Track) -> Gen:
    """The item's base strategy, then the augmenters that apply to it, as one generator."""
    if item.strategy in LLM_RUNNERS:
        drafts = yield from LLM_RUNNERS[item.strategy](item, ctx, track)
    elif item.strategy in TEMPLATE_MAKERS:
        drafts = TEMPLATE_MAKERS[item.strategy](item, ctx, track)
    else:
        raise ItemFailure("unknown_strategy", f"no strategy named {item.strategy!r}")
    drafts = list(drafts)
    cfg = ctx.cfg
    extra: list[Draft] = []
    if drafts and cfg.paraphrase.enabled and item.strategy in cfg.paraphrase.apply_to:
        extra += yield from paraphrase.augment(drafts, item, ctx, track)
    if drafts and cfg.evol_instruct.enabled and item.strategy in cfg.evol_instruct.apply_to:
        extra += yield from evol_instruct.augment(drafts, item, ctx, track)
    return drafts + extra


def _messages(d: Draft, system: str | None) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": system}] if system else []
    if d.turns:
        return (msgs if d.turns[0]["role"] != "system" else []) + list(d.turns)
    return msgs + [{"role": "user", "content": d.question}, {"role": "assistant", "content": d.answer}]


def draft_rows(item: WorkItem, drafts: list[Draft], cfg: SynthConfig, model: str) -> list[dict[str, Any]]:
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
            "generator": d.generator if d.generator else ("template" if item.strategy in TEMPLATE_MAKERS else model),
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


def run_items(items: list[WorkItem], backend: LLMBackend | None, cfg: SynthConfig,
              embed_fn: Callable[[list[str]], Any] | None = None, chunks: Any = None, docs: Any = None,
              index: Any = None) -> tuple[list[dict[str, Any]], list[ItemStatus]]:
    """Rows of QA_SCHEMA and one ItemStatus per item (in item order).

    chunks/docs: pa.Table, list of rows or {id: row}. RAG needs every chunk of
    the corpus (or a prebuilt `rag.build_index(...)` as `index`); the other
    strategies only the chunks/documents of their items.
    """
    ctx = Context(cfg, chunks, docs, embed_fn, index, getattr(backend, "model", "") if backend else "")
    model = ctx.backend_model
    tracks: dict[str, Track] = {}
    active: dict[str, tuple[Gen, list[ChatRequest]]] = {}
    rows_by_item: dict[str, list[dict[str, Any]]] = {}
    status: dict[str, ItemStatus] = {}

    def settle(item: WorkItem, step: Callable[[], list[ChatRequest]]) -> None:
        track = tracks[item.item_id]
        try:
            reqs = step()
        except StopIteration as stop:
            active.pop(item.item_id, None)
            rows = draft_rows(item, list(stop.value or []), cfg, track.model or model)
            rows_by_item[item.item_id] = rows
            status[item.item_id] = _status(item, track, len(rows))
        except ItemFailure as e:
            active.pop(item.item_id, None)
            status[item.item_id] = _status(item, track, 0, (e.kind, str(e), e.raw))
        except Exception as e:  # a bug or odd data in one item must not sink the shard
            active.pop(item.item_id, None)
            status[item.item_id] = _status(item, track, 0, ("internal_error", f"{type(e).__name__}: {e}", None))
        else:
            active[item.item_id] = (active[item.item_id][0], list(reqs))

    by_id = {}
    for item in items:
        if item.item_id in by_id:
            continue  # the same item twice in a shard runs once
        by_id[item.item_id] = item
        tracks[item.item_id] = Track()
        gen = _item_gen(item, ctx, tracks[item.item_id])
        active[item.item_id] = (gen, [])
        settle(item, gen.__next__)

    # Sampling is seeded per request from (item, wave, request index), so a run is reproducible;
    # a seed in the backend's LLMConfig replaces this (every request then gets that one).
    derive_seeds = getattr(getattr(backend, "cfg", None), "seed", None) is None
    wave = 0
    while active:
        wave += 1
        batch: list[ChatRequest] = []
        owners: list[tuple[str, int]] = []
        for iid, (_, reqs) in active.items():
            for j, r in enumerate(reqs):
                r.id = f"{iid[:16]}:w{wave}:{j}:{r.id}"
                if derive_seeds and r.seed is None:
                    r.seed = request_seed(iid, wave, j)
                batch.append(r)
                owners.append((iid, j))
        results = _generate(backend, batch) if batch else []
        per_item: dict[str, list[ChatResult]] = {iid: [] for iid in active}
        for (iid, _), res in zip(owners, results):
            per_item[iid].append(res)
        for iid in list(active):
            gen = active[iid][0]
            settle(by_id[iid], lambda g=gen, r=per_item[iid]: g.send(r))

    rows: list[dict[str, Any]] = []
    statuses: list[ItemStatus] = []
    for iid, item in by_id.items():
        rows.extend(rows_by_item.get(iid, []))
        statuses.append(status[iid])
    return rows, statuses
