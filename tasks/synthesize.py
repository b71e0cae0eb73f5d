"""synthesize: chunks and documents -> SFT samples (`qa`), by LLM strategies and templates.

The work (plan, cap, shards, resume, retry) is `operators.synthesize.run`;
this step keeps the shards as units of its key (a shard's samples and
statuses commit together), so a killed run resumes where it stopped, and
every finished LLM item in an item memo kept by its content (tasks.item_memo),
so a run with new documents asks the LLM only about what is new.
`infuse run --retry-failed` re-runs only the failed items; `--refresh`
starts over.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import Field

from infuse.operators.common.base import key_dump, stable_hash
from infuse.operators.llm import LLMConfig, make_backend
from infuse.operators.synthesize import (ITEM_STATUS_SCHEMA, QA_SCHEMA, SynthConfig, build_index, estimate,
                                    format_estimate, plan_items, synthesize)
from infuse.operators.synthesize.coverage import tag_facts
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, table
from infuse.tasks.framework.item_memo import ItemMemo


class SynthesizeOptions(StepOptions, SynthConfig):
    """Synthesis strategies per document format, and the LLM that runs them."""

    llm: LLMConfig = Field(default_factory=lambda: LLMConfig(backend="transformers"),
                           description="backend: transformers (local), openai (any compatible endpoint) or vllm")
    max_llm_items: int | None = Field(None, ge=0, description="cap on LLM work items (templates are not capped)")


class _Shards:
    """Shards as units of the step's key: samples and statuses commit together."""

    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx

    def load(self, name: str) -> tuple[pa.Table, pa.Table] | None:
        refs = self.ctx.load_unit(name)
        if refs is None:
            return None
        return self.ctx.store.read(refs["qa"]), self.ctx.store.read(refs["status"])

    def save(self, name: str, qa: pa.Table, status: pa.Table) -> None:
        self.ctx.save_unit(name, {"qa": qa, "status": status})


class Synthesize(Step):
    name = "synthesize"
    stage = 60
    gpu = True  # with the vllm backend it wants the GPU; the tag lets a work pool route it
    description = ("LLM QA pairs, RAG and RAFT answers, dialogues, summaries, atomic facts, rewordings, templates, "
                   "code/log tasks, paraphrases -> `qa` (messages + provenance)")
    inputs = ("chunks", "documents")
    outputs = {"qa": table(QA_SCHEMA), "status": table(ITEM_STATUS_SCHEMA, "one row per work item: done or failed")}
    Options = SynthesizeOptions
    rerun_on = ("retry_failed",)

    def fingerprint(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """Prompt override files are named in the recipe; their contents belong in the key too."""
        out = {}
        for name, path in sorted((cfg.get("prompt_overrides") or {}).items()):
            p = Path(path)
            out[name] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else f"missing:{path}"
        return {"prompt_overrides": out}

    def check(self, cfg: dict[str, Any]) -> list[str]:
        """Every prompt override: a packaged prompt's name (`name` or `name.lang`), and a UTF-8 file that is
        read as a prompt (.yaml/.yml: a mapping with system and user; any other file: the user template)."""
        import yaml

        from infuse.operators.prompts import PROMPT_DIR
        from infuse.tasks.framework.checks import read_text, shown

        problems: list[str] = []
        names = sorted({p.name.split(".", 1)[0] for p in PROMPT_DIR.glob("*.v*.*") if p.suffix in (".yaml", ".yml",
                                                                                                      ".txt")})
        for key, path in sorted((cfg.get("prompt_overrides") or {}).items()):
            option = f"prompt_overrides.{key}"
            if key.split(".", 1)[0] not in names:
                problems.append(f"{option}: no packaged prompt is called {key.split('.', 1)[0]!r}, so the file "
                                f"would replace nothing; names: {', '.join(names)}")
                continue
            text, bad = read_text(option, path)
            if text is None:
                problems += bad
                continue
            if Path(path).suffix in (".yaml", ".yml"):
                try:
                    data = yaml.safe_load(text)
                except yaml.YAMLError as e:
                    mark = getattr(e, "problem_mark", None)
                    where = f" line {mark.line + 1}" if mark is not None else ""
                    problems.append(f"{option}: {shown(path)}{where}: not valid YAML "
                                    f"({getattr(e, 'problem', None) or e})")
                    continue
                if data is not None and not isinstance(data, dict):
                    problems.append(f"{option}: {shown(path)}: a prompt YAML is a mapping with `system` and `user` "
                                    f"keys; this holds a {type(data).__name__}")
        return problems

    def _plan(self, ctx: StepContext) -> tuple[SynthConfig, Any, Any, list, list]:
        syn = SynthConfig.model_validate(ctx.options.model_dump(include=set(SynthConfig.model_fields)))
        chunks, docs = ctx.read("chunks"), ctx.read("documents")
        items, skipped = plan_items(syn, chunks, docs, ctx.options.max_llm_items)
        return syn, chunks, docs, items, skipped

    def estimate(self, ctx: StepContext) -> str:
        syn, chunks, docs, items, skipped = self._plan(ctx)
        llm = ctx.options.llm
        lines = [f"synthesis plan: {len(items)} work items over {chunks.num_rows} chunks and {docs.num_rows} "
                 f"documents; LLM: {llm.backend} {llm.model or '(packaged Gemma 3 270M)'}",
                 format_estimate(estimate(items, syn, chunks=chunks))]
        if skipped:
            reasons: dict[str, int] = {}
            for s in skipped:
                reasons[s.reason] = reasons.get(s.reason, 0) + 1
            lines.append(f"not synthesized: {reasons}")
        return "\n".join(lines)

    def run(self, ctx: StepContext) -> StepOutput:
        syn, chunks_t, docs_t, items, skipped = self._plan(ctx)
        chunks = {r["chunk_id"]: r for r in chunks_t.to_pylist()}
        docs = {r["doc_id"]: r for r in docs_t.to_pylist()}
        index = build_index(chunks) if any(it.strategy in ("rag", "raft") for it in items) else None  # embed once
        backend: list[Any] = []

        def get_backend() -> Any:  # built on first use: templates need no model load
            if not backend:
                backend.append(make_backend(ctx.options.llm))
            return backend[0]

        memo = ItemMemo(ctx.store, self.name, "items", fresh=ctx.fresh)
        llm_id = stable_hash(key_dump(ctx.options.llm))[:16]
        with ctx.progress(len(items), "synthesize", "items") as bar:
            res = synthesize(items, skipped, syn, _Shards(ctx), get_backend, chunks, docs, index=index,
                             retry_failed=bool(ctx.runtime.get("retry_failed")), progress=bar.update,
                             memo=memo, llm_id=llm_id)
        memo.finish(res.memo_keys)
        rows = res.qa.to_pylist()
        coverage = tag_facts(rows)
        qa_ref = ctx.write_table("qa", pa.Table.from_pylist(rows, schema=res.qa.schema))
        status_ref = ctx.write_table("status", res.status)
        c, llm = res.counts, ctx.options.llm
        md = (f"{len(items)} work items ({len(skipped)} chunks or items skipped, see rejects) in {c['shards']} shards: "
              f"{c['shards_run']} run, {c['shards_resumed']} resumed from earlier runs, {c['items_retried']} failed "
              f"items retried, {c['commits']} commits; {c['items_run']} items run, {c['items_from_memo']} LLM items "
              f"from the item memo (earlier runs' answers about unchanged text).\n\n"
              f"LLM: `{llm.backend}` {llm.model or '(packaged Gemma 3 270M)'}; usage {res.usage}")
        if coverage["facts"]:
            per = coverage["samples_per_fact"]
            md += (f"\n\nFacts: {coverage['facts']}, samples per fact min {per['min']}, median {per['median']}, "
                   f"max {per['max']}; {coverage['other_samples_stating_a_fact']} samples of other strategies state "
                   f"a fact (tagged `meta.fact_ids`).")
        n_in = len(items) + len(skipped)
        return StepOutput({"qa": qa_ref, "status": status_ref}, res.rejects, StepReport(
            rows_in=n_in, kept=n_in - len(res.rejects), unit_in="work items and skipped chunks",
            unit_out="work items done", markdown=md,
            tables={"by-strategy": [{"strategy": k, **v} for k, v in sorted(res.by_strategy.items())]},
            stats={"items": len(items), "samples": res.qa.num_rows, "by_strategy": res.by_strategy,
                   "usage": res.usage, "facts": coverage, **c}))
