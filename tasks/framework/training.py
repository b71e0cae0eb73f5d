"""What the training steps (cpt, sft, dpo) do the same way on the flow side.

The base every training step shares (TrainingStep: the recipe's `model` section
in the config, the machine checks of its method, the worker's code in the cache
key); the job it hands the worker (the base model to start from, its table
inputs as Parquet files, its options); the run of that job in a subprocess; and
the model directory the worker left, published as the step's artifact (hard
links: no second copy of the weights). How a run is shown (progress bar,
report) is in training_report.py, outside the cache key.
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
from infuse.storage import ArtifactRef
from infuse.tasks.framework.step import Step, StepContext, StepOptions
from infuse.tasks.framework.training_report import TrainingProgress

CPT_MODEL = "cpt.model"  # the continued-pretrained base: an input of the steps that start from it


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
    """The recipe's `model` section as a config entry (what Step.uses_model adds)."""
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
    """What cpt, sft and dpo share: the recipe's `model` section in the config, the machine checks of their
    method (then the input files'), and the worker's code in the cache key (it runs in a subprocess the step
    never imports)."""

    gpu = True
    uses_model = True
    operators = ("infuse.operators.train.worker",)

    def check(self, cfg: dict[str, Any]) -> list[str]:
        return check_training(cfg, cfg.get("method", "")) + super().check(cfg)


def base_model(ctx: StepContext) -> tuple[str, dict[str, Any]]:
    """The model to start from: the cpt step's output when it ran, else the recipe's model."""
    if ctx.has(CPT_MODEL):
        ref = ctx.input(CPT_MODEL)
        return str(ctx.input_dir(CPT_MODEL)), {"source": CPT_MODEL, "artifact_sha256": ref.sha256}
    return model_dir(ctx.cfg["model"].get("path")), {"source": "model", "recipe_path": ctx.cfg["model"].get("path")}


def write_inputs(ctx: StepContext, names: list[str]) -> tuple[dict[str, str | None], dict[str, str]]:
    """The step's table inputs as Parquet files in its work dir's data/ (what the worker reads), and their
    hashes; an input this run does not have is None."""
    present = [n for n in names if ctx.has(n)]
    folder = ctx.cached_dir("data", lambda tmp: write_tables({n: ctx.read(n) for n in present}, tmp))
    paths = {n: str(folder / f"{n}.parquet") if n in present else None for n in names}
    return paths, {n: ctx.input(n).sha256 for n in present}


def write_tables(tables: dict[str, Any], folder: Path) -> None:
    """Each table as `<name>.parquet` in folder."""
    import pyarrow.parquet as pq

    for name, table in tables.items():
        pq.write_table(table, folder / f"{name}.parquet")


def make_job(ctx: StepContext, kind: str, base: tuple[str, dict[str, Any]], data: dict[str, str | None],
             card_data: dict[str, str], **fields: Any) -> Job:
    """The worker's job: the step's schedule, adapter and the recipe's model, over `base` (base_model()),
    trained in the work dir; `fields` are the step's own (method, extra, ...)."""
    o = ctx.options
    path, info = base
    fields.setdefault("method", o.method)
    return Job(kind=kind, base=path, output_dir=str(ctx.work_dir()), data=data, model=ctx.cfg["model"],
               train=train_options(o), lora=o.lora, card={"base": info, "data": card_data}, **fields)


def train(ctx: StepContext, job: Job, launch: LaunchOptions, desc: str) -> dict[str, Any]:
    """Run the job; the worker's log lines go to the task log, its events to a progress bar."""
    progress = TrainingProgress(ctx, desc)
    try:
        return run_job(job, launch, on_log=ctx.log.info, on_event=progress)
    finally:
        progress.close()


def publish_model(ctx: StepContext, src: Path, name: str, describe: str) -> ArtifactRef:
    """The worker's final/ directory as the step's model artifact (hard-linked where possible)."""
    from infuse.operators.train.session import link_tree

    with ctx.dir_output(name) as out:
        link_tree(src, out.path)
        out.describe = describe
    assert out.ref is not None
    return out.ref


def rejects_of(result: dict[str, Any]) -> list[Reject]:
    """The rows the worker's data preparation dropped, with why."""
    return [Reject(r["id"], r["reason"], r["message"], {"split": r.get("split")})
            for r in result.get("prep", {}).get("rejects", [])]
