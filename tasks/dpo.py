"""dpo: direct preference optimisation on the preference pairs, over the SFT model, in an `accelerate launch` subprocess.

A new LoRA/DoRA adapter on top of the SFT model (its adapter merged into the
base in memory); the reference model is that SFT model, taken with the new
adapter disabled, so no second copy is loaded. Loss (sigmoid DPO, IPO, hinge;
or, with no reference, SimPO or ORPO), beta and SimPO's gamma come from the recipe.
Same launcher, checkpoints, resume-after-kill, progress and card as sft. The
model artifact is the DPO adapter with the SFT model under `sft/`; merge
folds base + SFT + DPO into one model. The report plots the reward margin and
accuracy over training next to the loss curve.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from infuse.operators.common.base import runtime
from infuse.tasks.framework import training
from infuse.tasks.framework.step import StepContext, StepOutput, model, optional
from infuse.tasks.framework.training_report import dpo_report


class DpoOptions(training.TrainStepOptions):
    """DPO: loss and beta, and the schedule of the new adapter (a smaller LR than SFT)."""

    enabled: bool = runtime(False, description="off by default, like sft: turn on with preference and merge")
    method: Literal["lora", "dora"] = Field("lora", description="the new adapter over the SFT model")
    loss_type: Literal["sigmoid", "ipo", "hinge", "simpo", "orpo"] = Field(
        "sigmoid", description="sigmoid (DPO) | ipo | hinge | simpo (SimPO, no reference: -logsigmoid(beta x (mean "
                               "token log-prob of chosen - of rejected) - simpo_gamma); trl.experimental CPOTrainer, "
                               "cpo_alpha 0) | orpo (odds-ratio, no reference; trl.experimental)")
    beta: float = Field(0.1, gt=0, description="how far the policy may move from the SFT model (IPO: tau; ORPO: "
                                                "lambda; SimPO: the reward scale, 2-10 in its paper)")
    simpo_gamma: float = Field(0.5, ge=0, description="simpo only: the target margin gamma between the chosen and "
                                                      "rejected rewards (beta x mean token log-prob)")
    precompute_ref_log_probs: bool = Field(False, description="score the pairs with the reference once, before "
                                                              "training, instead of on every step")
    learning_rate: float = Field(5e-6, gt=0, description="DPO wants a small LR: ~5e-6 full, ~5e-5 LoRA")
    max_length: int = Field(512, ge=16, description="tokens of prompt + reply; longer replies are cut")
    batch_size: int = Field(2, ge=1, description="pairs per process per micro-step")
    packing: bool = Field(False, description="not used by DPO (pairs are padded)")


class Dpo(training.TrainingStep):
    name = "dpo"
    stage = 110
    description = "direct preference optimisation (trl DPOTrainer + peft) over the SFT model"
    inputs = ("pairs", "sft.model", optional(training.CPT_MODEL))
    outputs = {"model": model("DPO adapter + the SFT model under sft/ + tokenizer + card.json")}
    Options = DpoOptions

    def run(self, ctx: StepContext) -> StepOutput:
        o = ctx.options
        if not ctx.input("pairs").rows:
            raise ValueError("dpo: the preference step made no pairs (see its rejects: every sampled reply was "
                             "grounded, truncated or empty?); raise preference.max_new_tokens or samples_per_prompt, "
                             "or add preference.user_data")
        data, hashes = training.write_inputs(ctx, ["pairs"])
        extra = {"sft": str(ctx.input_dir("sft.model")), "beta": o.beta, "loss_type": o.loss_type,
                 "precompute_ref_log_probs": o.precompute_ref_log_probs,
                 **({"simpo_gamma": o.simpo_gamma} if o.loss_type == "simpo" else {})}
        job = training.make_job(ctx, "dpo", training.base_model(ctx), data,
                                {**hashes, "sft.model": ctx.input("sft.model").sha256}, extra=extra)
        result = training.train(ctx, job, o.launch, "dpo")
        ref = training.publish_model(ctx, Path(job.output_dir) / "final", "model",
                                     f"dpo {o.method} ({o.loss_type}, beta {o.beta}): adapter over the SFT model")
        report = dpo_report(result, o.loss_type, o.beta)
        return StepOutput({"model": ref}, training.rejects_of(result), report)

