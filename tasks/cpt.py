"""cpt (optional, off by default): continued pretraining on the cleaned chunks, before sft.

Causal-LM loss on every token, packed (attention never crosses texts), with
optional general text files mixed in. Writes a plain model (a LoRA run is
merged) that sft starts from; its chat template is the one sft will use.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from infuse.operators.common.base import runtime
from infuse.operators.train.config import Job
from infuse.tasks.framework import training
from infuse.tasks.framework.step import Step, StepContext, StepOutput, model


class CptOptions(training.TrainStepOptions):
    """Continued pretraining: full by default, a smaller LR than SFT."""

    enabled: bool = runtime(False, description="off by default: turn on when the domain is far from the base "
                                               "model's pretraining data")
    method: Literal["full", "lora", "dora"] = "full"
    learning_rate: float = Field(2e-5, gt=0, description="about 0.1x the pretraining LR")
    general_text: list[str] = Field(default_factory=list, description="general text files mixed in: .txt/.md "
                                                                      "(paragraphs) or .jsonl with a `text` field")


class Cpt(Step):
    name = "cpt"
    stage = 85
    gpu = True
    description = "continued pretraining on the chunks' text (loss on every token, packed); off by default"
    inputs = ("chunks",)
    outputs = {"model": model("full weights + tokenizer with its chat template + card.json")}
    Options = CptOptions
    operators = ("infuse.operators.train.worker",)

    def config(self, recipe: Any) -> dict[str, Any]:
        return {**super().config(recipe), "model": training.model_config(recipe)}

    def fingerprint(self, cfg: dict[str, Any]) -> dict[str, Any]:
        files = {}
        for path in cfg.get("general_text") or []:
            p = Path(path)
            files[path] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else f"missing:{path}"
        return {"general_text": files}

    def check(self, cfg: dict[str, Any]) -> list[str]:
        """The machine (check_training), and every general text file: there, UTF-8, and a .jsonl file's every
        line an object with a `text` string (what the trainer reads; it would fail on a line that is not JSON)."""
        from infuse.tasks.framework.checks import jsonl_rows, read_text, row_problems

        problems = training.check_training(cfg, cfg.get("method", "full"))
        for i, path in enumerate(cfg.get("general_text") or []):
            option = f"general_text.{i}"
            text, bad = read_text(option, path)
            if text is None:
                problems += bad
            elif Path(path).suffix == ".jsonl":
                problems += row_problems(option, path, jsonl_rows(text), lambda where, row: None if isinstance(
                    row, dict) and isinstance(row.get("text"), str) else "no `text` string")
        return problems

    def run(self, ctx: StepContext) -> StepOutput:
        import pyarrow.parquet as pq

        o = ctx.options
        base, base_info = training.base_model(ctx)
        folder = ctx.work_dir() / "data"
        folder.mkdir(parents=True, exist_ok=True)
        text_path = folder / "text.parquet"
        chunks = ctx.read("chunks", columns=["chunk_id", "text"])
        if not text_path.is_file():
            pq.write_table(chunks, text_path)
        job = Job(kind="cpt", base=base, output_dir=str(ctx.work_dir()), data={"text": str(text_path)},
                  model=ctx.cfg["model"], train=training.train_options(o), method=o.method, lora=o.lora,
                  extra={"general_text": [str(Path(p).resolve()) for p in o.general_text]},
                  card={"base": base_info, "data": {"chunks": ctx.input("chunks").sha256}})
        result = training.train(ctx, job, o.launch, "cpt")
        ref = training.publish_model(ctx, Path(job.output_dir) / "final", "model",
                                     f"cpt {o.method}: full weights + tokenizer + card.json")
        report = training.training_report(result, f"cpt ({o.method})", chunks.num_rows, chunks.num_rows, "chunks")
        return StepOutput({"model": ref}, [], report)
