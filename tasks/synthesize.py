"""synthesize: chunks and documents -> SFT samples (`qa`), by LLM strategies and templates.

Work items are planned deterministically and run in shards. Each finished
shard is committed on its own (its samples, then its item statuses, the
status file being the commit point), so a killed run resumes where it stopped
and never regenerates a finished shard. Every item ends `done` or `failed`
with its error; `infuse run --retry-failed` re-runs only the failed items.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from infuse.operators.llm import LLMConfig, make_backend
from infuse.operators.synth import (ITEM_STATUS_SCHEMA, QA_SCHEMA, SynthConfig, WorkItem, build_index, estimate,
                             format_estimate, plan, run_items)
from infuse.operators.synth.config import LLM_STRATEGIES
from infuse.storage import ArtifactRef, ArtifactStore
from infuse.tasks.common import StepResult, StepSpec, finish, step_task, without_llm_runtime

SPEC = StepSpec(
    name="synthesize",
    inputs=("chunks", "documents"),
    outputs=("qa", "status"),
    gpu=True,  # with the vllm backend it wants the GPU; the tag lets a work pool route it
    description="LLM QA pairs, RAG answers, templates, code/log tasks, paraphrases -> `qa` (messages + provenance)",
)
__all__ = ["SPEC", "synthesize", "plan_items", "synth_config", "estimate", "format_estimate"]
STEP_ONLY = {"llm", "max_llm_items"}  # recipe keys of this step that are not SynthConfig fields


def key_config(cfg: dict[str, Any]) -> dict[str, Any]:
    return without_llm_runtime(cfg)


def fingerprint(cfg: dict[str, Any]) -> dict[str, Any]:
    """Prompt override files are named in the recipe; their contents belong in the key too."""
    out = {}
    for name, path in sorted((cfg.get("prompt_overrides") or {}).items()):
        p = Path(path)
        out[name] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else f"missing:{path}"
    return {"prompt_overrides": out}


def synth_config(cfg: dict[str, Any]) -> SynthConfig:
    return SynthConfig.model_validate({k: v for k, v in cfg.items() if k not in STEP_ONLY})


def _skip(item_id: str, reason: str, message: str, **detail: Any) -> dict[str, Any]:
    return {"id": item_id, "step": SPEC.name, "reason": reason, "message": message,
            "detail": json.dumps(detail, ensure_ascii=False)}


def plan_items(cfg: dict[str, Any], chunks: pa.Table, docs: pa.Table) -> tuple[list[WorkItem], list[dict[str, Any]]]:
    """The step's work items, and a reject row for every chunk or item that gets no synthesis.

    `max_llm_items` caps the LLM items (templates are free); a chunk no strategy
    takes (its format maps to none, or it is under min_chunk_chars) is
    recorded too, so every input chunk's fate is written down.
    """
    syn = synth_config(cfg)
    items = plan(chunks, docs, syn)
    skipped: list[dict[str, Any]] = []
    cap = cfg.get("max_llm_items")
    if cap is not None:
        kept, n = [], 0
        for it in items:
            if it.strategy in LLM_STRATEGIES:
                if n >= cap:
                    skipped.append(_skip(it.item_id, "over_max_llm_items", f"{it.strategy} item not run: "
                                         f"max_llm_items is {cap}", strategy=it.strategy, chunk_id=it.chunk_id))
                    continue
                n += 1
            kept.append(it)
        items = kept
    planned_chunks = {it.chunk_id for it in items if it.chunk_id}
    capped_chunks = {json.loads(s["detail"])["chunk_id"] for s in skipped}
    whole_docs = {it.doc_id for it in items if not it.chunk_id and it.doc_id}
    for cid, did, fmt, text in zip(*(chunks.column(c).to_pylist() for c in ("chunk_id", "doc_id", "format", "text"))):
        if cid in planned_chunks or cid in capped_chunks or did in whole_docs:
            continue
        skipped.append(_skip(cid, "no_work_item", f"no synthesis strategy took this {fmt} chunk "
                             f"(strategies for {fmt}: {syn.strategies_for(fmt) or 'none'}; "
                             f"min_chunk_chars {syn.min_chunk_chars})", chars=len(text or "")))
    return items, skipped


class _LazyBackend:
    """Build the LLM backend only when a shard needs one (templates need none; a model load is costly)."""

    def __init__(self, llm_cfg: dict[str, Any]) -> None:
        self.cfg = LLMConfig.model_validate(llm_cfg)
        self._backend: Any = None

    def get(self) -> Any:
        if self._backend is None:
            self._backend = make_backend(self.cfg)
        return self._backend


def _run_shard(items: list[WorkItem], backend: _LazyBackend, syn: SynthConfig, ctx: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    needs_llm = any(it.strategy in LLM_STRATEGIES for it in items)
    rows, statuses = run_items(items, backend.get() if needs_llm else None, syn, chunks=ctx["chunks"],
                               docs=ctx["docs"], index=ctx.get("index"))
    return rows, [s.to_row() for s in statuses]


def _failed_item_reject(s: dict[str, Any]) -> dict[str, Any]:
    """A failed work item as a reject row; the raw LLM output is kept for inspection."""
    detail = {"strategy": s["strategy"], "key": s["key"], "raw_text": s["raw_text"]}
    return {"id": s["item_id"], "step": SPEC.name, "reason": s["error_kind"] or "failed",
            "message": s["error"] or "", "detail": json.dumps(detail, ensure_ascii=False)}


@step_task(SPEC)
def synthesize(store: ArtifactStore, key: str, cfg: dict[str, Any], inputs: dict[str, ArtifactRef],
               runtime: dict[str, Any]) -> StepResult:
    syn = synth_config(cfg)
    chunks_t, docs_t = store.read(inputs["chunks"]), store.read(inputs["documents"])
    items, skipped = plan_items(cfg, chunks_t, docs_t)
    chunk_rows = {r["chunk_id"]: r for r in chunks_t.to_pylist()}
    ctx: dict[str, Any] = {"chunks": chunk_rows, "docs": {r["doc_id"]: r for r in docs_t.to_pylist()}}
    if any(it.strategy == "rag" for it in items):
        ctx["index"] = build_index(chunk_rows)  # embed the corpus once, not per shard
    backend = _LazyBackend(cfg["llm"])
    retry_failed = bool(runtime.get("retry_failed"))
    counts = {"shards": 0, "shards_resumed": 0, "shards_run": 0, "items_retried": 0}
    qa_parts: list[pa.Table] = []
    status_parts: list[pa.Table] = []
    size = syn.shard_size
    for n, start in enumerate(range(0, len(items), size)):
        shard = items[start:start + size]
        name = f"shard-{n:05d}"
        counts["shards"] += 1
        done_ref = store.committed(SPEC.name, key, f"{name}.status")
        qa_ref = store.committed(SPEC.name, key, f"{name}.qa")
        if done_ref is not None and qa_ref is not None:
            qa_prev = store.read(qa_ref)
            st_prev = store.read(done_ref)
            failed = {r["item_id"] for r in st_prev.to_pylist() if r["status"] == "failed"}
            if not (retry_failed and failed):
                counts["shards_resumed"] += 1
                qa_parts.append(qa_prev)
                status_parts.append(st_prev)
                continue
            # retry only the failed items; keep every finished one as it was
            rows, statuses = _run_shard([it for it in shard if it.item_id in failed], backend, syn, ctx)
            counts["items_retried"] += len(failed)
            new_status = {s["item_id"]: s for s in statuses}
            statuses = [new_status.get(r["item_id"], r) for r in st_prev.to_pylist()]
            rows = qa_prev.to_pylist() + rows
        else:
            rows, statuses = _run_shard(shard, backend, syn, ctx)
        counts["shards_run"] += 1
        qa_t = pa.Table.from_pylist(rows, schema=QA_SCHEMA)
        st_t = pa.Table.from_pylist(statuses, schema=ITEM_STATUS_SCHEMA)
        store.write_table(SPEC.name, key, f"{name}.qa", qa_t)
        store.write_table(SPEC.name, key, f"{name}.status", st_t)  # written last: the shard's commit point
        qa_parts.append(qa_t)
        status_parts.append(st_t)

    qa = pa.concat_tables(qa_parts) if qa_parts else QA_SCHEMA.empty_table()
    status = pa.concat_tables(status_parts) if status_parts else ITEM_STATUS_SCHEMA.empty_table()
    qa_ref = store.write_table(SPEC.name, key, "qa", qa, QA_SCHEMA)
    status_ref = store.write_table(SPEC.name, key, "status", status, ITEM_STATUS_SCHEMA)
    rejects = skipped + [_failed_item_reject(s) for s in status.to_pylist() if s["status"] == "failed"]
    by_strategy: dict[str, dict[str, int]] = {}
    for s in status.to_pylist():
        d = by_strategy.setdefault(s["strategy"], {"items": 0, "done": 0, "failed": 0, "samples": 0,
                                                   "calls": 0, "failed_calls": 0})
        d["items"] += 1
        d[s["status"]] += 1
        d["samples"] += s["n_samples"]
        d["calls"] += s["calls"]
        d["failed_calls"] += s["failed_calls"]
    usage = {"prompt_tokens": sum(s["usage_prompt_tokens"] for s in status.to_pylist()),
             "completion_tokens": sum(s["usage_completion_tokens"] for s in status.to_pylist())}
    table = [{"strategy": k, **v} for k, v in sorted(by_strategy.items())]
    md = (f"{len(items)} work items ({len(skipped)} chunks or items skipped, see rejects) in "
          f"{counts['shards']} shards: {counts['shards_run']} run, "
          f"{counts['shards_resumed']} resumed from earlier runs, {counts['items_retried']} failed items retried.\n\n"
          f"LLM: `{backend.cfg.backend}` {backend.cfg.model or '(packaged Gemma 3 270M)'}; usage {usage}")
    stats = {"items": len(items), "samples": qa.num_rows, "by_strategy": by_strategy, "usage": usage, **counts,
             "_report": {"rows_in": len(items) + len(skipped), "kept": len(items) + len(skipped) - len(rejects),
                         "unit_in": "work items and skipped chunks", "unit_out": "work items done", "extra_md": md, "extra_tables": {"by-strategy": table}}}
    return finish(store, SPEC, key, {"qa": qa_ref, "status": status_ref}, rejects, stats)
