"""cpt (optional, off by default): continued pretraining on the cleaned chunks, before sft.

Causal-LM loss on every token, packed (attention never crosses texts), with
optional general text files mixed in. Writes a plain model (a LoRA run is
merged) that sft starts from; its chat template is the one sft will use.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from infuse.operators.common.base import runtime
from infuse.tasks.framework import training
from infuse.operators.common.input_files import input_file
from infuse.tasks.framework.step import StepContext, StepOutput, model
from infuse.tasks.framework.training_report import training_report


class CptOptions(training.TrainStepOptions):
    """Continued pretraining: full by default, a smaller LR than SFT."""

    enabled: bool = runtime(False, description="off by default: turn on when the domain is far from the base "
                                               "model's pretraining data")
    method: Literal["full", "lora", "dora"] = "full"
    learning_rate: float = Field(2e-5, gt=0, description="about 0.1x the pretraining LR")
    general_text: list[str] = input_file(default_factory=list, jsonl_fields=("text",),
                                         description="general text files mixed in: .txt/.md (paragraphs) or "
                                                     ".jsonl with a `text` field")


class Cpt(training.TrainingStep):
    name = "cpt"
    stage = 85
    description = "continued pretraining on the chunks' text (loss on every token, packed); off by default"
    inputs = ("chunks",)
    outputs = {"model": model("full weights + tokenizer with its chat template + card.json")}
    Options = CptOptions

    def run(self, ctx: StepContext) -> StepOutput:
        o = ctx.options
        chunks = ctx.input("chunks")
        folder = ctx.cached_dir("data", lambda tmp: training.write_tables(
            {"text": ctx.read("chunks", columns=["chunk_id", "text"])}, tmp))
        job = training.make_job(ctx, "cpt", training.base_model(ctx), {"text": str(folder / "text.parquet")},
                                {"chunks": chunks.sha256}, extra={"general_text": o.general_text})
        result = training.train(ctx, job, o.launch, "cpt")
        ref = training.publish_model(ctx, Path(job.output_dir) / "final", "model",
                                     f"cpt {o.method}: full weights + tokenizer + card.json")
        report = training_report(result, f"cpt ({o.method})", chunks.rows, chunks.rows, "chunks")
        return StepOutput({"model": ref}, [], report)
