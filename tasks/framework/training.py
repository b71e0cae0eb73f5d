"""What the training steps (cpt, sft; dpo next) do the same way on the flow side.

Run a job in its subprocess with its log in the task log and a progress bar
(steps, loss, tokens/s, ETA) in the terminal and the UI; publish the model
directory the worker left (hard links: no second copy of the weights); and
turn the worker's result into the step's report (loss curve, metrics).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from infuse.operators.common.base import Reject
from infuse.operators.common.models import model_dir
from infuse.operators.train.config import Job, LaunchOptions, LoraOptions, TrainOptions
from infuse.operators.train.devices import gpu_count, installed
from infuse.operators.train.launch import preflight, run_job
from infuse.operators.train.report import loss_curve_png, metrics_rows
from infuse.storage import ArtifactRef
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepReport


class TrainStepOptions(StepOptions, TrainOptions):
    """The recipe section of a training step: schedule and batch (TrainOptions), adapter, launch."""

    lora: LoraOptions = Field(default_factory=LoraOptions)
    launch: LaunchOptions = Field(default_factory=LaunchOptions)
    eval_steps: int | None = Field(None, ge=1, description="evaluate every N steps; empty = 5 times per run")
    early_stopping_patience: int | None = Field(None, ge=1, description="stop after N evaluations without a "
                                                                        "better eval loss (needs `eval`)")


def train_options(o: TrainOptions) -> TrainOptions:
    """The TrainOptions part of a step's options (what the worker's Job carries)."""
    return TrainOptions.model_validate(o.model_dump(include=set(TrainOptions.model_fields)))


def model_config(recipe: Any) -> dict[str, Any]:
    return recipe.model.model_dump(mode="json")


def check_training(cfg: dict[str, Any], method: str) -> list[str]:
    """Machine problems of a training step, for `infuse validate`."""
    problems = preflight(LaunchOptions.model_validate(cfg.get("launch") or {}))
    if method == "qlora":
        if not gpu_count():
            problems.append("method qlora quantizes the base to 4 bits with bitsandbytes, which needs a CUDA GPU; "
                            "this machine has none: use lora (or dora) on CPU")
        elif not installed("bitsandbytes"):
            problems.append("method qlora needs bitsandbytes: pip install bitsandbytes")
    attn = (cfg.get("model") or {}).get("attn")
    if attn == "flash_attention_2" and not installed("flash_attn"):
        problems.append("model.attn flash_attention_2 needs flash-attn: pip install flash-attn")
    if attn in ("flash_attention_2", "varlen") and not gpu_count():
        problems.append(f"model.attn {attn} runs on GPUs only; use auto or sdpa on CPU")
    if cfg.get("liger") and not installed("liger_kernel"):
        problems.append("liger: true needs liger-kernel: pip install liger-kernel")
    return problems


class TrainingStep(Step):
    """What sft and dpo share: the recipe's `model` section in the config, the machine checks of their
    method, and the worker's code in the cache key (it runs in a subprocess the step never imports)."""

    gpu = True
    operators = ("infuse.operators.train.worker",)

    def config(self, recipe: Any) -> dict[str, Any]:
        return {**super().config(recipe), "model": model_config(recipe)}

    def check(self, cfg: dict[str, Any]) -> list[str]:
        return check_training(cfg, cfg.get("method", "lora"))


def base_model(ctx: StepContext) -> tuple[str, dict[str, Any]]:
    """The model to start from: the cpt step's output when it ran, else the recipe's model."""
    if ctx.has("cpt.model"):
        ref = ctx.input("cpt.model")
        return str(ctx.input_dir("cpt.model")), {"source": "cpt.model", "artifact_sha256": ref.sha256}
    return model_dir(ctx.cfg["model"].get("path")), {"source": "model", "recipe_path": ctx.cfg["model"].get("path")}


def write_inputs(ctx: StepContext, names: list[str]) -> tuple[dict[str, str | None], dict[str, str]]:
    """The step's table inputs as Parquet files in its work dir (what the worker reads), and their hashes."""
    import pyarrow.parquet as pq

    folder = ctx.work_dir() / "data"
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str | None] = {}
    hashes = {}
    for name in names:
        if not ctx.has(name):
            paths[name] = None
            continue
        path = folder / f"{name}.parquet"
        if not path.is_file():
            tmp = path.with_suffix(".tmp")
            pq.write_table(ctx.read(name), tmp)
            tmp.replace(path)
        paths[name] = str(path)
        hashes[name] = ctx.input(name).sha256
    return paths, hashes


def train(ctx: StepContext, job: Job, launch: LaunchOptions, desc: str) -> dict[str, Any]:
    """Run the job; the worker's log lines go to the task log, its events to a progress bar."""
    bars: list[Any] = []

    def on_event(e: dict[str, Any]) -> None:
        if e["event"] == "start" and not bars:
            bars.append(ctx.progress(e["total_steps"], desc, "steps"))
        bar = bars[0] if bars else None
        if bar is None:
            return
        if e["event"] in ("start", "log"):
            info = {k: round(e[k], 4) for k in ("loss", "eval_loss") if k in e}
            if "tokens_per_s" in e:
                info["tok/s"] = round(e["tokens_per_s"])
            if e.get("phase"):
                info["phase"] = e["phase"]
            bar.set(e["step"], **info)
        elif e["event"] == "checkpoint":
            ctx.log.info(f"{desc}: checkpoint at step {e['step']}")

    try:
        return run_job(job, launch, on_log=ctx.log.info, on_event=on_event)
    finally:
        for bar in bars:
            bar.close()


def publish_model(ctx: StepContext, src: Path, name: str, describe: str) -> ArtifactRef:
    """The worker's final/ directory as the step's model artifact (hard-linked where possible)."""
    from infuse.operators.train.session import link_tree

    with ctx.dir_output(name) as out:
        link_tree(src, out.path)
        out.describe = describe
    assert out.ref is not None
    return out.ref


def rejects_of(result: dict[str, Any]) -> list[Reject]:
    return [Reject(r["id"], r["reason"], r["message"], {"split": r.get("split")})
            for r in result.get("prep", {}).get("rejects", [])]


def training_report(result: dict[str, Any], title: str, rows_in: int | None, kept: int | None,
                    unit: str = "samples") -> StepReport:
    m = result.get("metrics", {})
    hybrid = result.get("hybrid")
    md = [f"**{result.get('method')}**, {result.get('total_steps')} steps"
          + (f" (resumed at step {result['resumed_from']})" if result.get("resumed_from") else "")
          + f", {m.get('tokens')} tokens in {m.get('train_s')} s: {m.get('tokens_per_s')} tokens/s on "
          f"{m.get('world_size')} x {m.get('gpu') or m.get('device')}, peak memory {m.get('peak_memory_gb')} GB"
          + (f", MFU {m['mfu']:.1%}" if m.get("mfu") is not None else "") + "."]
    tpl = result.get("template", {})
    md.append(f"Chat template `{tpl.get('name')}` (sha256 {str(tpl.get('sha256'))[:12]}), saved with the model.")
    if hybrid:
        md.append(f"Hybrid: full fine-tuning for steps 1-{hybrid['switch_step']}, then LoRA to step "
                  f"{hybrid['total_steps']}; last full loss {hybrid['full_losses'][-1]:.4f}, last LoRA loss "
                  f"{hybrid['lora_losses'][-1]:.4f}." if hybrid["full_losses"] and hybrid["lora_losses"] else "")
    ranks = result.get("ranks") or []
    if len(ranks) > 1 and all(r.get("weights") for r in ranks):
        same = len({r["weights"] for r in ranks}) == 1
        md.append(f"{len(ranks)} data-parallel ranks; their weights after training "
                  f"{'agree' if same else '**differ**'} (checksum).")
    png = loss_curve_png(result.get("history", []), title, hybrid["switch_step"] if hybrid else None)
    stats = {"metrics": m, "total_steps": result.get("total_steps"), "resumed_from": result.get("resumed_from", 0),
             "template": tpl, "prep": {k: v for k, v in result.get("prep", {}).items() if k != "rejects"}}
    if hybrid:
        stats["hybrid"] = hybrid
    return StepReport(rows_in=rows_in, kept=kept, unit_in=unit, unit_out=unit, markdown="\n\n".join(md),
                      tables={"metrics": metrics_rows(result)}, images={"loss-curve": png}, stats=stats)
