"""qa_filter: drop empty/malformed, mixed-language, duplicate, length-outlier and ungrounded samples, each with a reason."""
from __future__ import annotations

from typing import Any

from pydantic import Field

from infuse.operators.llm import LLMConfig, make_backend
from infuse.operators.qa_filter import QAFilterConfig, filter_samples
from infuse.operators.qa_filter.check import extra_check_code, unknown_checks
from infuse.operators.qa_filter.report import summary
from infuse.operators.qa_filter.sources import chunk_sources
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, table


class QAFilterOptions(StepOptions, QAFilterConfig):
    """Sample filters; `llm` is used only by the optional grounding judge."""

    llm: LLMConfig = Field(default_factory=lambda: LLMConfig(backend="transformers"))


class QAFilter(Step):
    name = "qa_filter"
    stage = 70
    description = ("reject empty/malformed, mixed-language, duplicate questions (MinHash), 3σ answer lengths, "
                   "ungrounded answers (every assistant turn)")
    inputs = ("qa", "chunks")
    outputs = {"qa": table()}
    Options = QAFilterOptions

    def check(self, cfg: dict[str, Any]) -> list[str]:
        return unknown_checks(cfg.get("extra_checks") or [])

    def fingerprint(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """A plug-in check's code, which the step's own code version does not cover."""
        return extra_check_code(cfg.get("extra_checks") or [])

    def run(self, ctx: StepContext) -> StepOutput:
        config = QAFilterConfig.model_validate(ctx.options.model_dump(include=set(QAFilterConfig.model_fields)))
        sources, documents = chunk_sources(ctx.read("chunks", columns=["chunk_id", "doc_id", "text"]))
        judge = make_backend(ctx.options.llm) if config.judge.enabled else None
        qa = ctx.read("qa")
        result = filter_samples(qa, sources, config, backend=judge, documents=documents)
        out = ctx.write_table("qa", result.kept, qa.schema)
        return StepOutput({"qa": out}, result.rejects, StepReport(
            rows_in=qa.num_rows, kept=result.kept.num_rows, unit_in="samples", unit_out="samples",
            **summary(qa, result, config.min_answer_chars)))
