"""select: choose the QA rows to train on (IFD, Superfiltering, MoDS, diversity, baselines).

Writes `qa` (the chosen rows, same schema, for mix) and `scored` (every row with
its score columns, `selected`, `exempt`, `selected_by` and `reason`), so a
budget can be re-cut in pandas without scoring again. Every dropped row is a
reject with its reason. The work is `operators/select.run`; the report shows
the IFD histogram with its cuts and the kept/dropped counts per source document.
"""
from __future__ import annotations

from typing import Any

from infuse.operators.common.base import runtime
from infuse.operators.select import Hooks, SelectConfig
from infuse.operators.select import run as run_select
from infuse.operators.select.scorers import uses_ifd
from infuse.operators.select.seed import TrainFn
from infuse.operators.train.config import Job
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, optional, table


class SelectOptions(StepOptions, SelectConfig):
    """The method, its scorer and the budget; see operators/select. Off unless the recipe turns it on:
    choosing data is a decision (on documents, every row may carry a fact), and scoring costs model time."""

    enabled: bool = runtime(False, description="run this step (off by default); when off, mix reads qa_filter's qa")


class Select(Step):
    name = "select"
    stage = 75
    description = "choose the training rows: IFD / Superfiltering / MoDS / k-center / baselines; every row's scores kept"
    gpu = True  # the scorer runs a model; on a GPU in bf16
    inputs = ("qa", optional("documents"))
    outputs = {"qa": table(description="the selected rows"),
               "scored": table(description="every row with its scores, selected, exempt, selected_by and reason")}
    Options = SelectOptions

    uses_model = True  # the base model: ifd's scorer by default

    def uses_gpu(self, cfg: dict[str, Any]) -> bool:
        """The baselines score nothing; every other method runs a model (scorer or embeddings)."""
        return cfg.get("method") not in ("longest", "random")

    def estimate(self, ctx: StepContext) -> str:
        opts: SelectConfig = ctx.options
        strategies = ctx.read("qa", columns=["strategy"]).column("strategy").to_pylist()
        cand = sum(not opts.exempt(s) for s in strategies)
        what = f"{2 * cand} forward passes (IFD)" if uses_ifd(opts) else opts.method
        return f"select: {len(strategies)} rows, {cand} candidates ({len(strategies) - cand} exempt); {what}"

    def run(self, ctx: StepContext) -> StepOutput:
        qa = ctx.read("qa")
        hooks = Hooks(model=ctx.cfg.get("model") or {}, work_dir=ctx.work_dir, train=_trainer(ctx),
                      progress=ctx.progress)
        out = run_select(qa, ctx.options, hooks, sources=_sources(ctx))
        refs = {"qa": ctx.write_table("qa", out.kept, qa.schema), "scored": ctx.write_table("scored", out.scored)}
        report = StepReport(rows_in=qa.num_rows, kept=out.kept.num_rows, unit_in="samples", unit_out="samples",
                            **out.report)
        return StepOutput(refs, out.rejects, report)


def _trainer(ctx: StepContext) -> TrainFn:
    """MoDS' seed model trains as the sft step does: the framework's worker subprocess, log and progress."""

    def train(job: Job, desc: str) -> dict[str, Any]:
        from infuse.operators.train.config import LaunchOptions
        from infuse.tasks.framework import training

        return training.train(ctx, job, LaunchOptions(), desc)

    return train


def _sources(ctx: StepContext) -> dict[str, str]:
    if not ctx.has("documents"):
        return {}
    docs = ctx.read("documents", columns=["doc_id", "path"])
    return dict(zip(docs.column("doc_id").to_pylist(), docs.column("path").to_pylist()))
