"""evaluate: every model the run produced, closed-book, against the same models with retrieval.

Questions: mix's held-out domain rows (short-answer facts when synthesis marks
them), k paraphrases of each (synthesis backend), the user's own eval file, and
the general rows (forgetting). Answers: base, cpt, sft, dpo (whichever exist),
base+RAG and <last tuned>+RAG, greedy, one chat template. Scores: strict (the
headline), contains, token F1, ROUGE-L, an optional LLM judge, loss per token on
general data. The work is `operators.evaluate.run.evaluate`; this step reads its
inputs, lends it the answer memo, progress bars and work dir, and writes
`scores`, `questions` and the report.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from infuse.operators.common.base import runtime
from infuse.operators.common.models import model_dir
from infuse.operators.evaluate.answerers import Tuned
from infuse.operators.evaluate.config import EvaluateConfig
from infuse.operators.evaluate.run import QUESTIONS_SCHEMA, SCORES_SCHEMA, Inputs, evaluate
from infuse.operators.evaluate.services import Services
from infuse.tasks.framework.item_memo import ItemMemo
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, models, optional, table
from infuse.tasks.framework.training import CPT_MODEL


class EvaluateOptions(EvaluateConfig, StepOptions):
    """Question set, answerers and scores (see README "Reading the evaluation")."""

    enabled: bool = runtime(False, description="off by default (it runs every model): turn it on after sft")


class Evaluate(Step):
    name = "evaluate"
    stage = 130
    gpu = True  # with the vllm backend it wants the GPU
    uses_model = True
    description = "base, cpt, sft, dpo, base+RAG and tuned+RAG on held-out, paraphrased, user and general questions"
    inputs = (optional("eval"), optional("train"), optional("chunks"), models(optional=True))
    outputs = {"scores": table(SCORES_SCHEMA, "every question, answer and score, per model"),
               "questions": table(QUESTIONS_SCHEMA, "the question set, paraphrases with their item")}
    Options = EvaluateOptions

    def uses_gpu(self, cfg: dict[str, Any]) -> bool:
        """Answers from a served endpoint need no local GPU; local answering or the loss does."""
        return (cfg.get("llm") or {}).get("backend") != "openai" or bool(cfg.get("loss", True))

    def run(self, ctx: StepContext) -> StepOutput:
        o: EvaluateOptions = ctx.options  # type: ignore[assignment]
        memo = ItemMemo(ctx.store, self.name, "answers", fresh=ctx.fresh)
        out = evaluate(_inputs(ctx, o), o, Services(memo, ctx.progress, ctx.work_dir(), warn=ctx.log.warning))
        refs = {"questions": ctx.write_table("questions", out.questions),
                "scores": ctx.write_table("scores", out.scores)}
        rep = out.report
        return StepOutput(refs, out.rejects, StepReport(
            rows_in=out.rows_in, kept=out.kept, unit_in="questions", unit_out="questions", markdown=rep.markdown,
            tables=rep.tables, images=rep.images, stats=rep.stats))


def _inputs(ctx: StepContext, o: EvaluateOptions) -> Inputs:
    """The run's tables and models as plain values (chunks only when retrieval is on)."""
    def rows(name: str, columns: list[str] | None = None) -> list[dict[str, Any]] | None:
        return ctx.read(name, columns=columns).to_pylist() if ctx.has(name) else None

    tuned = [Tuned(name.rpartition(".")[0], name, ctx.input_dir(name), ctx.input(name).sha256,
                   chat=name != CPT_MODEL) for name in ctx.models()]
    return Inputs(base=Path(model_dir(ctx.cfg["model"].get("path"))), eval_rows=rows("eval"),
                  train_rows=rows("train", ["sample_id", "messages"]),
                  chunks=rows("chunks", ["chunk_id", "text"]) if o.rag.enabled else None, models=tuned,
                  chat_template=ctx.cfg["model"].get("chat_template"))
