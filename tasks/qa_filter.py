"""qa_filter: drop empty, malformed, duplicate, length-outlier and ungrounded samples, each with a reason."""
from __future__ import annotations

from pydantic import Field

from infuse.operators.llm import LLMConfig, make_backend
from infuse.operators.qa_filter import QAFilterConfig, qa_filter
from infuse.tasks.base import Step, StepContext, StepOptions, StepOutput, StepReport, table


class QAFilterOptions(StepOptions, QAFilterConfig):
    """Sample filters; `llm` is used only by the optional grounding judge."""

    llm: LLMConfig = Field(default_factory=lambda: LLMConfig(backend="transformers"))


class QAFilter(Step):
    name = "qa_filter"
    stage = 70
    description = "reject empty/malformed, duplicate questions (MinHash), 3σ answer lengths, ungrounded answers"
    inputs = ("qa", "chunks")
    outputs = {"qa": table()}
    Options = QAFilterOptions

    def run(self, ctx: StepContext) -> StepOutput:
        config = QAFilterConfig.model_validate(ctx.options.model_dump(include=set(QAFilterConfig.model_fields)))
        chunks = ctx.read("chunks", columns=["chunk_id", "text"])
        sources = dict(zip(chunks.column("chunk_id").to_pylist(), chunks.column("text").to_pylist()))
        judge = make_backend(ctx.options.llm) if config.judge.enabled else None
        qa = ctx.read("qa")
        kept, rejects = qa_filter(qa, sources, config, backend=judge)
        out = ctx.write_table("qa", kept, qa.schema)
        by_strategy: dict[str, dict[str, int]] = {}
        for s in qa.column("strategy").to_pylist():
            by_strategy.setdefault(s, {"in": 0, "kept": 0})["in"] += 1
        for s in kept.column("strategy").to_pylist():
            by_strategy[s]["kept"] += 1
        table_ = [{"strategy": k, **v} for k, v in sorted(by_strategy.items())]
        return StepOutput({"qa": out}, rejects, StepReport(
            rows_in=qa.num_rows, kept=kept.num_rows, unit_in="samples", unit_out="samples",
            tables={"by-strategy": table_}, stats={"by_strategy": by_strategy}))
