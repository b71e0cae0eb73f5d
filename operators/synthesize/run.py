"""The synthesize step's work in one call: plan, cap, run in resumable shards, tag fact coverage, report.

Plain inputs (the chunks and documents tables, SynthConfig, the LLM options) give plain outputs
(the qa and status tables, the rejects, counts and a summary). Where shards and
the item memo are kept and how progress is shown, the caller lends (`Keep`),
so the same call runs under the flow, in a test or in a notebook.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, ContextManager

import pyarrow as pa

from infuse.operators.common.base import Reject, key_dump, stable_hash
from infuse.operators.llm import LLMBackend, make_backend
from infuse.operators.synthesize.config import LLMOptions, SynthConfig
from infuse.operators.synthesize.coverage import tag_facts
from infuse.operators.synthesize.estimate import estimate, format_estimate
from infuse.operators.synthesize.orchestrate import ItemMemo, ShardStore, SynthResult, synthesize
from infuse.operators.synthesize.plan import plan_items
from infuse.operators.synthesize.rag import build_index
from infuse.operators.synthesize.schema import WorkItem
from infuse.operators.synthesize.strategy import strategy

__all__ = ["Keep", "Synthesis", "run_synthesis", "describe_plan"]


@dataclass
class Keep:
    """What the caller lends a run: where shards and LLM answers are kept, progress, the backend."""

    shards: ShardStore
    memo: ItemMemo | None = None
    # total -> a context whose value's update(n) counts finished items (a Progress bar)
    progress: Callable[[int], ContextManager[Any]] | None = None
    backend: Callable[[], LLMBackend] | None = None  # default: make_backend(run.llm), on first use
    retry_failed: bool = False


@dataclass
class Synthesis:
    """A run's outputs, and what its report says."""

    items: list[WorkItem]
    skipped: list[Reject]  # chunks no strategy took, LLM items over max_llm_items
    result: SynthResult
    qa: pa.Table  # result.qa, its samples tagged with the facts they state (`meta.fact_ids`)
    coverage: dict[str, Any]
    markdown: str = ""

    @property
    def rejects(self) -> list[Reject]:
        return self.result.rejects

    @property
    def rows_in(self) -> int:
        return len(self.items) + len(self.skipped)

    def stats(self) -> dict[str, Any]:
        r = self.result
        return {"items": len(self.items), "samples": r.qa.num_rows, "by_strategy": r.by_strategy, "usage": r.usage,
                "facts": self.coverage, **r.counts}

    def by_strategy(self) -> list[dict[str, Any]]:
        return [{"strategy": k, **v} for k, v in sorted(self.result.by_strategy.items())]


def describe_plan(syn: SynthConfig, run: LLMOptions, chunks: pa.Table, docs: pa.Table) -> str:
    """`infuse plan`: the items, what they will cost, and what is not synthesized and why."""
    items, skipped = plan_items(syn, chunks, docs, run.max_llm_items)
    lines = [f"synthesis plan: {len(items)} work items over {chunks.num_rows} chunks and {docs.num_rows} "
             f"documents; LLM: {run.llm.backend} {_model(run)}",
             format_estimate(estimate(items, syn, chunks=chunks))]
    if skipped:
        reasons: dict[str, int] = {}
        for s in skipped:
            reasons[s.reason] = reasons.get(s.reason, 0) + 1
        lines.append(f"not synthesized: {reasons}")
    return "\n".join(lines)


def run_synthesis(syn: SynthConfig, run: LLMOptions, chunks_t: pa.Table, docs_t: pa.Table, keep: Keep) -> Synthesis:
    """Plan, run (resuming committed shards, taking memo hits), and tag which samples state which fact."""
    items, skipped = plan_items(syn, chunks_t, docs_t, run.max_llm_items)
    chunks = {r["chunk_id"]: r for r in chunks_t.to_pylist()}
    docs = {r["doc_id"]: r for r in docs_t.to_pylist()}
    index = build_index(chunks) if any(_retrieves(it) for it in items) else None  # embed the corpus once
    with (keep.progress(len(items)) if keep.progress else nullcontext()) as bar:
        res = synthesize(items, skipped, syn, keep.shards, _lazy(keep.backend or (lambda: make_backend(run.llm))),
                         chunks, docs, index=index, retry_failed=keep.retry_failed,
                         progress=bar.update if bar is not None else None, memo=keep.memo,
                         llm_id=stable_hash(key_dump(run.llm))[:16])
    rows = res.qa.to_pylist()
    coverage = tag_facts(rows)
    out = Synthesis(items, skipped, res, pa.Table.from_pylist(rows, schema=res.qa.schema), coverage)
    out.markdown = _markdown(out, run)
    return out


def _model(run: LLMOptions) -> str:
    return run.llm.model or "(packaged Gemma 3 270M)"


def _retrieves(item: WorkItem) -> bool:
    found = strategy(item.strategy)
    return found is not None and found.retrieves


def _lazy(build: Callable[[], LLMBackend]) -> Callable[[], LLMBackend]:
    """The backend, built on first use: templates need no model load."""
    made: list[LLMBackend] = []

    def get() -> LLMBackend:
        if not made:
            made.append(build())
        return made[0]

    return get


def _markdown(out: Synthesis, run: LLMOptions) -> str:
    c, res = out.result.counts, out.result
    md = (f"{len(out.items)} work items ({len(out.skipped)} chunks or items skipped, see rejects) in {c['shards']} "
          f"shards: {c['shards_run']} run, {c['shards_resumed']} resumed from earlier runs, {c['items_retried']} "
          f"failed items retried, {c['commits']} commits; {c['items_run']} items run, {c['items_from_memo']} LLM "
          f"items from the item memo (earlier runs' answers about unchanged text).\n\n"
          f"LLM: `{run.llm.backend}` {_model(run)}; usage {res.usage}")
    coverage = out.coverage
    if coverage["facts"]:
        per = coverage["samples_per_fact"]
        md += (f"\n\nFacts: {coverage['facts']}, samples per fact min {per['min']}, median {per['median']}, "
               f"max {per['max']}; {coverage['other_samples_stating_a_fact']} samples of other strategies state "
               f"a fact (tagged `meta.fact_ids`).")
    return md

