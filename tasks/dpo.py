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
from infuse.operators.train.config import Job
from infuse.operators.train.report import reward_curve_png
from infuse.tasks.framework import training
from infuse.tasks.framework.step import StepContext, StepOutput, model, optional


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
    inputs = ("pairs", "sft.model", optional("cpt.model"))
    outputs = {"model": model("DPO adapter + the SFT model under sft/ + tokenizer + card.json")}
    Options = DpoOptions

    def run(self, ctx: StepContext) -> StepOutput:
        o = ctx.options
        base, base_info = training.base_model(ctx)
        n_pairs = ctx.input("pairs").rows
        if not n_pairs:
            raise ValueError("dpo: the preference step made no pairs (see its rejects: every sampled reply was "
                             "grounded, truncated or empty?); raise preference.max_new_tokens or samples_per_prompt, "
                             "or add preference.user_data")
        data, hashes = training.write_inputs(ctx, ["pairs"])
        sft = ctx.input_dir("sft.model")
        job = Job(kind="dpo", base=base, output_dir=str(ctx.work_dir()), data=data, model=ctx.cfg["model"],
                  train=training.train_options(o), method=o.method, lora=o.lora,
                  extra={"sft": str(sft), "beta": o.beta, "loss_type": o.loss_type,
                         "precompute_ref_log_probs": o.precompute_ref_log_probs,
                         **({"simpo_gamma": o.simpo_gamma} if o.loss_type == "simpo" else {})},
                  card={"base": base_info, "data": {**hashes, "sft.model": ctx.input("sft.model").sha256}})
        result = training.train(ctx, job, o.launch, "dpo")
        ref = training.publish_model(ctx, Path(job.output_dir) / "final", "model",
                                     f"dpo {o.method} ({o.loss_type}, beta {o.beta}): adapter over the SFT model")
        prep = result["prep"]["train"]
        report = training.training_report(result, f"dpo ({o.loss_type}, beta {o.beta})", prep["samples"],
                                          prep["kept"], unit="pairs")
        report.images["reward-margins"] = reward_curve_png(result.get("history", []), f"dpo ({o.loss_type})")
        hist = [r for r in result.get("history", []) if "rewards/margins" in r]
        if hist:
            reward = ("beta x mean token log-prob, no reference" if o.loss_type in ("simpo", "orpo")
                      else "beta x log-ratio to the SFT model")
            report.markdown += (f"\n\nReward margin (chosen - rejected, {reward}) "
                                f"{hist[0]['rewards/margins']:.4f} at step {hist[0]['step']} -> "
                                f"{hist[-1]['rewards/margins']:.4f} at step {hist[-1]['step']}; reward accuracy "
                                f"{hist[-1].get('rewards/accuracies', float('nan')):.2f}.")
            report.stats["rewards"] = {"first_margin": hist[0]["rewards/margins"],
                                       "last_margin": hist[-1]["rewards/margins"],
                                       "last_accuracy": hist[-1].get("rewards/accuracies")}
        report.stats["ref_check"] = result.get("ref_check", {})
        return StepOutput({"model": ref}, training.rejects_of(result), report)
