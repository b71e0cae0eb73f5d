"""qa_filter: drop empty/malformed, mixed-language, duplicate, length-outlier and ungrounded samples, each with a reason."""
from __future__ import annotations

import statistics
from typing import Any

import numpy as np
from pydantic import Field

from infuse.operators.llm import LLMConfig, make_backend
from infuse.operators.qa_filter import QAFilterConfig, answer_lengths, qa_filter
from infuse.operators.filter.plots import histogram_png
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

    def run(self, ctx: StepContext) -> StepOutput:
        config = QAFilterConfig.model_validate(ctx.options.model_dump(include=set(QAFilterConfig.model_fields)))
        chunks = ctx.read("chunks", columns=["chunk_id", "doc_id", "text"])
        ids, docs, texts = (chunks.column(c).to_pylist() for c in ("chunk_id", "doc_id", "text"))
        sources = dict(zip(ids, texts))
        judge = make_backend(ctx.options.llm) if config.judge.enabled else None
        qa = ctx.read("qa")
        kept, rejects = qa_filter(qa, sources, config, backend=judge, documents=_DocTexts(docs, texts))
        out = ctx.write_table("qa", kept, qa.schema)
        by_strategy: dict[str, dict[str, int]] = {}
        for s in qa.column("strategy").to_pylist():
            by_strategy.setdefault(s, {"in": 0, "kept": 0})["in"] += 1
        for s in kept.column("strategy").to_pylist():
            by_strategy[s]["kept"] += 1
        per_strategy: dict[str, list[int]] = {}
        for strategy, msgs in zip(kept.column("strategy").to_pylist(), kept.column("messages").to_pylist()):
            per_strategy.setdefault(strategy, []).extend(len(m["content"]) for m in msgs if m["role"] == "assistant")
        table_ = [{"strategy": k, **v, "median_answer_chars": statistics.median(per_strategy[k]) if k in per_strategy
                   else None} for k, v in sorted(by_strategy.items())]
        lengths = answer_lengths(kept)
        stats, md = _length_stats(lengths, config.min_answer_chars)
        images = {"answer-length": histogram_png("answer length (chars)", np.array(lengths, dtype=float),
                                                 config.min_answer_chars or None, None, ylabel="assistant turns",
                                                 sources=("floor", None))} if lengths else {}
        return StepOutput({"qa": out}, rejects, StepReport(
            rows_in=qa.num_rows, kept=kept.num_rows, unit_in="samples", unit_out="samples", markdown=md,
            tables={"by-strategy": table_}, images=images,
            stats={"by_strategy": by_strategy, "answer_length": stats,
                   "turns_dropped": sum(1 for r in rejects if r.reason.endswith("_turn"))}))


class _DocTexts:
    """doc_id -> its chunks' text joined, built on first use: what the language check lets a sample quote."""

    def __init__(self, docs: list[str], texts: list[str]) -> None:
        self.docs, self.texts = docs, texts
        self.by_doc: dict[str, list[int]] | None = None

    def __call__(self, doc_id: str) -> str | None:
        if self.by_doc is None:
            self.by_doc = {}
            for i, d in enumerate(self.docs):
                self.by_doc.setdefault(d, []).append(i)
        rows = self.by_doc.get(doc_id)
        return "\n".join(self.texts[i] for i in rows) if rows else None


def _length_stats(lengths: list[int], floor: int) -> tuple[dict[str, Any], str]:
    """Median and spread of the kept answers (one per assistant turn), and the report's line about them."""
    if not lengths:
        return {"n": 0}, "No answers kept."
    q = np.percentile(lengths, [10, 25, 75, 90]).tolist()
    short = sum(1 for n in lengths if n < 50)
    stats = {"n": len(lengths), "median": float(statistics.median(lengths)), "mean": round(float(np.mean(lengths)), 1),
             "p10": q[0], "p25": q[1], "p75": q[2], "p90": q[3], "min": min(lengths), "max": max(lengths),
             "under_50_chars": short, "floor": floor}
    md = (f"Answer length (characters, one per assistant turn, {len(lengths)} kept): median **{stats['median']:.0f}**, "
          f"p10 {q[0]:.0f}, p90 {q[3]:.0f}, max {stats['max']}; {short} ({short / len(lengths):.0%}) under 50 characters; "
          f"floor {floor}.")
    return stats, md
