"""sft: supervised fine-tuning on the mix's `train` (and `eval`) samples, in an `accelerate launch` subprocess.

Methods lora, dora, qlora (GPU), full and hybrid (full for the first
`switch_at` of the steps, then LoRA). Loss on assistant tokens only, the
end-of-turn token included; packed, padding-free batches. Checkpoints live in
the step's work dir: a re-run after a kill resumes from the newest. The model
artifact holds the adapter (or full weights; hybrid: adapter + base/), the
tokenizer with its chat template, and card.json.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from infuse.operators.common.base import runtime
from infuse.operators.train.config import Method
from infuse.tasks.framework import training
from infuse.tasks.framework.step import StepContext, StepOutput, model, optional
from infuse.tasks.framework.training_report import sft_report


class SftOptions(training.TrainStepOptions):
    """SFT: the method, its adapter and schedule, and how the training processes are launched."""

    enabled: bool = runtime(False, description="off by default (training is the costly part): turn it on, with "
                                               "merge, to get a model")
    method: Method | Literal["auto"] = Field(
        "auto", description="auto (full for a model of up to auto_full_max_params, else lora) | lora | dora | qlora "
                            "(4-bit base, GPU) | full | hybrid (full, then LoRA)")
    auto_full_max_params: float = Field(1.5e9, gt=0, description="method auto: full fine-tuning up to this many "
                                                                 "parameters (full learned the facts where LoRA did "
                                                                 "not on Gemma 3 270M, README 'Training')")
    switch_at: float = Field(0.2, gt=0, lt=1, description="hybrid: the fraction of steps trained in full")


class Sft(training.TrainingStep):
    name = "sft"
    stage = 90
    description = "supervised fine-tuning (trl SFTTrainer + peft): lora, dora, qlora, full, hybrid"
    # `train`/`eval` from mix; with mix off, the qa_filter's `qa` alone (all of it trained, no eval)
    inputs = (optional("train"), optional("eval"), optional("qa"), optional(training.CPT_MODEL))
    outputs = {"model": model("adapter or weights + tokenizer with its chat template + card.json")}
    Options = SftOptions

    @staticmethod
    def method(o: SftOptions, base: str) -> str:
        """The method to train with: `auto` is full for a small model (its parameters counted from the safetensors
        headers), lora for a larger one or when the count is unknown."""
        if o.method != "auto":
            return o.method
        from infuse.operators.train.modeling import params_on_disk  # imports torch: only when deciding

        n = params_on_disk(base)
        return "full" if n is not None and n <= o.auto_full_max_params else "lora"

    def run(self, ctx: StepContext) -> StepOutput:
        o = ctx.options
        base = training.base_model(ctx)
        method = self.method(o, base[0])
        if not ctx.has("train") and not ctx.has("qa"):
            raise ValueError("sft needs `train` (from mix) or `qa` (from qa_filter); neither is in this run")
        data, hashes = training.write_inputs(ctx, ["train", "eval"] if ctx.has("train") else ["qa"])
        if "qa" in data:
            data = {"train": data["qa"]}
        job = training.make_job(ctx, "sft", base, data, hashes, method=method, switch_at=o.switch_at,
                                eval_steps=o.eval_steps, early_stopping_patience=o.early_stopping_patience)
        result = training.train(ctx, job, o.launch, "sft")
        ref = training.publish_model(ctx, Path(job.output_dir) / "final", "model",
                                     f"sft {method}: {result['card']['layout']} + tokenizer + card.json")
        return StepOutput({"model": ref}, training.rejects_of(result), sft_report(result, method))
