"""Recipe options of the training steps (cpt, sft; dpo reuses them), and the job a worker runs.

`TrainOptions` is what every trainer shares (schedule, batch, length, seed,
checkpoints); `LaunchOptions` says how the subprocess is started (processes,
strategy, machines) and changes how work runs, except the world size, which
sets the global batch and so the result. A `Job` is the JSON file the launcher
hands the worker: everything the training needs, with paths resolved.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from infuse.operators.common.base import Strict, runtime

Method = Literal["lora", "dora", "full", "qlora", "hybrid"]
Strategy = Literal["ddp", "fsdp2", "zero2", "zero3"]


class LoraOptions(Strict):
    """The adapter of lora, dora, qlora and the second phase of hybrid."""

    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = Field("all-linear", description="module names, or all-linear "
                                                                                          "(every linear layer but the "
                                                                                          "LM head)")


class LaunchOptions(Strict):
    """How the training subprocess is started: `accelerate launch` with these settings."""

    num_processes: int | None = Field(None, ge=1, description="processes in all (one per GPU); empty = every GPU of "
                                                              "this machine, or 1 on CPU. Sets the global batch")
    num_machines: int = Field(1, ge=1, description="machines taking part (multi-node); num_processes counts all")
    strategy: Strategy = runtime("ddp", description="ddp | fsdp2 | zero2 | zero3 (configs in deploy/accelerate/)")
    config_file: str | None = runtime(None, description="your own accelerate config YAML; replaces `strategy`")
    machine_rank: int = runtime(0, ge=0, description="this machine's rank (multi-node)")
    main_process_ip: str | None = runtime(None, description="rank 0's address (multi-node)")
    main_process_port: int | None = runtime(None, ge=1, le=65535, description="empty = a free port")
    cpu_threads: int | None = runtime(None, ge=1, description="torch threads per process on CPU; empty = cores / "
                                                              "processes")
    env: dict[str, str] = runtime(default_factory=dict, description="extra environment of the training processes")


class TrainOptions(Strict):
    """What every trainer shares. Batch sizes are per process; the global batch is
    batch_size x grad_accum x processes."""

    learning_rate: float = Field(1e-4, gt=0, description="LoRA ~1e-4; full fine-tuning ~1e-5 (0.1x pretraining)")
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="optimizer steps; overrides epochs")
    batch_size: int = Field(4, ge=1, description="packed rows per process per micro-step")
    grad_accum: int = Field(1, ge=1)
    max_length: int = Field(1024, ge=16, description="tokens per packed row; longer samples are truncated")
    packing: bool = Field(True, description="pack samples into rows (padding-free; attention never crosses samples)")
    freeze_embeddings: bool = Field(False, description="full/hybrid: keep the token embeddings (and a tied LM head) "
                                                       "as they are; on a small model with a large vocabulary they "
                                                       "are most of the weights, so steps are faster and less of "
                                                       "the general model moves")
    seed: int = 42
    gradient_checkpointing: bool = runtime(False, description="trade compute for memory")
    liger: bool | None = runtime(None, description="Liger kernels; empty = when installed and on a GPU")
    save_steps: int | None = runtime(None, ge=1, description="checkpoint every N steps; empty = 4 per run")
    save_total_limit: int = runtime(2, ge=1)
    logging_steps: int = runtime(1, ge=1)


class Job(Strict):
    """One training run as the worker reads it from job.json (written by `launch.run_job`)."""

    kind: str  # sft | cpt | dpo ...: the worker's dispatch key
    base: str  # the model to start from: a local HF directory
    output_dir: str  # work dir: checkpoints/, final/, result.json, events.jsonl
    data: dict[str, str | None]  # name -> a Parquet file (train, eval, text ...)
    model: dict[str, Any] = Field(default_factory=dict)  # the recipe's `model` section: chat_template, dtype, attn
    train: TrainOptions = Field(default_factory=TrainOptions)
    method: Method = "lora"
    lora: LoraOptions = Field(default_factory=LoraOptions)
    switch_at: float = 0.2  # hybrid
    eval_steps: int | None = None
    early_stopping_patience: int | None = None
    card: dict[str, Any] = Field(default_factory=dict)  # facts for card.json (base, data hashes, step)
    extra: dict[str, Any] = Field(default_factory=dict)  # kind-specific settings (dpo: beta ...)
