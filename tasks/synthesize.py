"""synthesize: chunks and documents -> SFT samples (`qa`), by LLM strategies and templates.

The work (plan, cap, shards, resume, retry, fact coverage) is
`operators.synthesize.run.run_synthesis`; this step lends it the shards as
units of its key (a shard's samples and statuses commit together), so a killed
run resumes where it stopped, and an item memo kept by content
(tasks.framework.item_memo), so a run with new documents asks the LLM only
about what is new. `infuse run --retry-failed` re-runs only the failed items;
`--refresh` starts over.
"""
from __future__ import annotations

from typing import Any

import pyarrow as pa

from infuse.operators.common.base import code_version
from infuse.operators.common.file_checks import read_text, shown
from infuse.operators.synthesize import ITEM_STATUS_SCHEMA, QA_SCHEMA, LLMOptions, SynthConfig, overrides
from infuse.operators.synthesize.run import Keep, describe_plan, run_synthesis
from infuse.operators.synthesize.strategies import MODULES
from infuse.operators.synthesize.strategy import REGISTRY
from infuse.tasks.framework.item_memo import ItemMemo
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, table


class SynthesizeOptions(LLMOptions, StepOptions, SynthConfig):  # fields: SynthConfig's, the step's, the LLM's
    """Synthesis strategies per document format, and the LLM that runs them."""


class _Shards:
    """Shards as units of the step's key: samples and statuses commit together."""

    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx

    def load(self, name: str) -> tuple[pa.Table, pa.Table] | None:
        refs = self.ctx.load_unit(name)
        return None if refs is None else (self.ctx.store.read(refs["qa"]), self.ctx.store.read(refs["status"]))

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
    operators = MODULES  # the strategies, found in their folder (imports alone would not name them)
    rerun_on = ("retry_failed",)

    def fingerprint(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """Prompt override files are named in the recipe; their contents belong in the key too. So does the code
        of a strategy a recipe's plugin registered outside strategies/, when by_format names it: editing it
        reruns synthesize, as editing a built-in one does."""
        named = {n for names in (cfg.get("by_format") or {}).values() for n in names}
        plugins = {n: code_version(type(REGISTRY[n]).__module__) for n in sorted(named)
                   if n in REGISTRY and type(REGISTRY[n]).__module__ not in MODULES}
        return {"prompt_overrides": overrides.digests(cfg.get("prompt_overrides") or {}),
                **({"plugin_strategies": plugins} if plugins else {})}

    def check(self, cfg: dict[str, Any]) -> list[str]:
        """Every prompt override: a packaged prompt's name (`name` or `name.lang`), and a UTF-8 file that is
        read as a prompt (.yaml/.yml: a mapping with system and user; any other file: the user template)."""
        return overrides.problems(cfg.get("prompt_overrides") or {}, read_text, shown)

    def estimate(self, ctx: StepContext) -> str:
        return describe_plan(SynthConfig.part_of(ctx.options), ctx.options, ctx.read("chunks"), ctx.read("documents"))

    def run(self, ctx: StepContext) -> StepOutput:
        memo = ItemMemo(ctx.store, self.name, "items", fresh=ctx.fresh)
        keep = Keep(_Shards(ctx), memo, lambda total: ctx.progress(total, "synthesize", "items"),
                    retry_failed=bool(ctx.runtime.get("retry_failed")))
        res = run_synthesis(SynthConfig.part_of(ctx.options), ctx.options, ctx.read("chunks"), ctx.read("documents"),
                            keep)
        memo.finish(res.result.memo_keys)
        refs = {"qa": ctx.write_table("qa", res.qa), "status": ctx.write_table("status", res.result.status)}
        return StepOutput(refs, res.rejects, StepReport(
            rows_in=res.rows_in, kept=res.rows_in - len(res.rejects), unit_in="work items and skipped chunks",
            unit_out="work items done", markdown=res.markdown, tables={"by-strategy": res.by_strategy()},
            stats=res.stats()))
