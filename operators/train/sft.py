"""Supervised fine-tuning in the worker: lora, dora, qlora, full and hybrid (full, then LoRA).

`train_sft(job)` is plain Python (run it under `accelerate launch`, or let
`launch.run_job` do that): it tokenizes the chat samples with their loss masks,
packs them, trains with trl's SFTTrainer (+ peft), resumes from the newest
checkpoint under the job's output dir, and leaves the model in `final/`, its
card inside, and `result.json` (metrics, loss history, rejects) beside it.

Hybrid: full fine-tuning for the first `switch_at` of the steps on the run's
LR schedule; at the switch the full weights are checkpointed, frozen, LoRA is
attached to them, and training continues on the rows not yet seen, on the same
schedule (offset by the switch step). The output is the updated base
(`final/base/`) plus the adapter (`final/`); merge folds them into one model.
"""
from __future__ import annotations

import gc
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch
from transformers import PrinterCallback

from infuse.operators.train import data as D
from infuse.operators.train.config import Job
from infuse.operators.train.modeling import apply_liger, freeze_embeddings, load_model, lora_config, param_count
from infuse.operators.train.session import (Session, checkpoint_step, complete_checkpoint, history, last_checkpoint,
                                            link_tree)
from infuse.operators.train.trainer import EventCallback, InfuseTrainer, StopAt, say


def read_rows(path: str | None) -> list[dict[str, Any]]:
    if not path:
        return []
    return pq.read_table(path).to_pylist()


def build_chat_sets(s: Session) -> tuple[dict[str, Any], dict[str, Any]]:
    job, t = s.job, s.job.train
    info: dict[str, Any] = {"rejects": []}
    sets = {}
    for name in ("train", "eval"):
        rows = read_rows(job.data.get(name))
        if not rows and name == "eval":
            continue
        prep = D.prepare_chat(rows, s.tokenizer, s.template.source, t.max_length)
        info["rejects"] += [{**r, "split": name} for r in prep.rejects]
        info[name] = {"samples": len(rows), "kept": len(prep.examples), "truncated": prep.truncated,
                      "tokens": prep.tokens, "trained_tokens": prep.trained_tokens}
        if prep.examples:
            sets[name] = D.pack(prep.examples, t.max_length, t.packing)
            info[name]["rows"] = len(sets[name])
    if "train" not in sets:
        raise ValueError("no trainable samples in `train` (see the rejects for why)")
    return sets, info


def _trainer(s: Session, model: Any, output_dir: Path, train_rows: Any, eval_rows: Any, max_steps: int,
             callbacks: list[Any], peft_config: Any = None, **kw: Any) -> InfuseTrainer:
    from trl import SFTConfig

    args = SFTConfig(**s.args(output_dir, max_steps, eval_rows is not None), max_length=None, packing=False,
                     padding_free=True, assistant_only_loss=False, dataset_num_proc=None, shuffle_dataset=False)
    trainer = InfuseTrainer(model=model, args=args, train_dataset=train_rows, eval_dataset=eval_rows,
                            processing_class=s.tokenizer, peft_config=peft_config,
                            callbacks=callbacks + s.callbacks(eval_rows is not None), **kw)
    trainer.remove_callback(PrinterCallback)  # EventCallback says it, once, on rank 0
    return trainer


def _load(s: Session, path: str, qlora: bool = False) -> Any:
    model = load_model(path, s.dtype, s.attn, quantize_4bit=qlora)
    apply_liger(model, s.job.train.liger, s.gpu)
    s.set_generation_ends(model)
    return model


def train_sft(job: Job) -> None:
    s = Session(job)
    t = job.train
    sets, info = s.prepared(lambda: build_chat_sets(s))
    train_rows, total, rows_per_step = s.schedule(sets["train"])
    eval_rows = sets.get("eval")
    say(f"sft: {info['train']['kept']} samples in {len(sets['train'])} rows of <= {t.max_length} tokens; "
        f"{total} steps of {rows_per_step} rows" + (f"; eval {info['eval']['kept']} samples" if eval_rows else ""))
    if job.method == "hybrid":
        run = _hybrid(s, train_rows, eval_rows, total, rows_per_step)
    else:
        run = _single(s, train_rows, eval_rows, total)
    ranks = s.rank_report(run.trainer)
    final = s.final_dir()
    if job.method == "hybrid" and s.is_main:
        _keep_base(Path(run.extra.pop("base_checkpoint")), final / "base")
    run.trainer.save_model(str(final))
    if s.is_main:
        model = run.trainer.accelerator.unwrap_model(run.trainer.model)
        model.generation_config.save_pretrained(str(final))
    metrics = s.metrics(run.tokens, run.train_s, run.n_params)
    result = {"kind": "sft", "method": job.method, "total_steps": total, "history": run.history, "prep": info,
              "metrics": metrics, "ranks": ranks, "template": s.template.to_card(), **run.extra}
    card = s.card(metrics=metrics, steps=total, layout=LAYOUTS[job.method],
                  **({"hybrid": run.extra["hybrid"]} if "hybrid" in run.extra else {}))
    s.finish(final, card, result)


# What final/ holds, by method: an adapter (over the base), full weights, or an adapter over the updated base.
LAYOUTS = {"lora": "adapter", "dora": "adapter", "qlora": "adapter", "full": "full", "hybrid": "adapter+base"}


def _keep_base(checkpoint: Path, base: Path) -> None:
    """Hybrid's updated base (the switch checkpoint) into final/base, without its optimizer and trainer state."""
    link_tree(checkpoint, base)
    for junk in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin", "trainer_state.json"):
        (base / junk).unlink(missing_ok=True)
    for rng in base.glob("rng_state_*.pth"):
        rng.unlink()


@dataclass
class _Run:
    """What a training run leaves for the result: its trainer (for saving), loss history, result extras
    (resumed_from, step_rates, hybrid ...), parameter count, training seconds and tokens trained."""

    trainer: Any
    history: list[dict[str, Any]]
    extra: dict[str, Any]
    n_params: int
    train_s: float
    tokens: int


def _single(s: Session, train_rows: Any, eval_rows: Any, total: int) -> _Run:
    job = s.job
    model = _load(s, job.base, qlora=job.method == "qlora")
    n_params = param_count(model)[0]
    if job.method == "full" and job.train.freeze_embeddings:
        say(f"sft: token embeddings frozen ({freeze_embeddings(model) / 1e6:.0f}M parameters)")
    peft = lora_config(job.lora, dora=job.method == "dora") if job.method != "full" else None
    ckpts = s.out / "checkpoints"
    resume = last_checkpoint(ckpts)
    events = EventCallback(total)
    trainer = _trainer(s, model, ckpts, train_rows, eval_rows, total, [events], peft)
    if resume:
        say(f"sft: resuming from {Path(resume).name}")
    trainer.train(resume_from_checkpoint=resume)
    extra = {"resumed_from": checkpoint_step(resume), "step_rates": events.tokens_per_s}
    return _Run(trainer, history(trainer.state.log_history), extra, n_params, events.train_s,
                trainer._total_train_tokens)


def _hybrid(s: Session, train_rows: Any, eval_rows: Any, total: int, rows_per_step: int) -> _Run:
    """Full fine-tuning to the switch step (or its checkpoint, when a resumed run got that far), then LoRA over
    the switch checkpoint on the rows not yet seen, continuing the same LR schedule."""
    job = s.job
    if total < 2:
        raise ValueError("hybrid needs at least 2 steps (one full, one LoRA)")
    switch = min(max(round(job.switch_at * total), 1), total - 1)
    switch_ckpt = s.out / "phase1" / f"checkpoint-{switch}"
    if complete_checkpoint(switch_ckpt):  # a switch checkpoint torn by a kill: the full phase writes it again
        full = _Run(None, _state_history(switch_ckpt, "full"), {"resumed_from": switch, "step_rates": []}, 0, 0.0, 0)
    else:
        full = _full_phase(s, train_rows, eval_rows, total, switch)
    rows2 = train_rows.select(range(min(switch * rows_per_step, len(train_rows)), len(train_rows)))
    model = _load(s, str(switch_ckpt))
    n_params = full.n_params or param_count(model)[0]
    ckpt2 = s.out / "phase2"
    resume2 = last_checkpoint(ckpt2)
    resumed = switch + checkpoint_step(resume2) if resume2 else full.extra["resumed_from"]
    events = EventCallback(total, phase="lora", step_offset=switch)
    trainer = _trainer(s, model, ckpt2, rows2, eval_rows, total - switch, [events], lora_config(job.lora),
                       lr_offset=switch, lr_total=total)
    trainer.train(resume_from_checkpoint=resume2)
    history2 = history(trainer.state.log_history, offset=switch, phase="lora")
    hybrid = {"switch_step": switch, "total_steps": total, "full_losses": _losses(full.history),
              "lora_losses": _losses(history2)}
    extra = {"resumed_from": resumed, "hybrid": hybrid, "step_rates": full.extra["step_rates"] + events.tokens_per_s,
             "base_checkpoint": str(switch_ckpt)}
    return _Run(trainer, full.history + history2, extra, n_params, full.train_s + events.train_s,
                full.tokens + trainer._total_train_tokens)


def _full_phase(s: Session, train_rows: Any, eval_rows: Any, total: int, switch: int) -> _Run:
    """Hybrid's first phase: full fine-tuning on the run's schedule, stopped (and checkpointed) at the switch.
    The model is freed before it returns: the second phase loads the switch checkpoint."""
    job = s.job
    ckpt1 = s.out / "phase1"
    model = _load(s, job.base)
    if job.train.freeze_embeddings:
        freeze_embeddings(model)
    n_params = param_count(model)[0]
    resume = last_checkpoint(ckpt1)
    events = EventCallback(total, phase="full")
    trainer = _trainer(s, model, ckpt1, train_rows, eval_rows, total, [events, StopAt(switch)])
    trainer.train(resume_from_checkpoint=resume)
    run = _Run(None, history(trainer.state.log_history, phase="full"),
               {"resumed_from": checkpoint_step(resume), "step_rates": list(events.tokens_per_s)}, n_params,
               events.train_s, trainer._total_train_tokens)
    del trainer, model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    s.state.wait_for_everyone()
    say(f"sft: switch at step {switch}/{total}: full weights frozen, LoRA attached ({run.tokens} tokens so far)")
    return run


def _losses(rows: list[dict[str, Any]]) -> list[float]:
    return [r["loss"] for r in rows if "loss" in r]


def _state_history(checkpoint: Path, phase: str) -> list[dict[str, Any]]:
    """The first phase's history from the switch checkpoint's trainer state (a resumed run past the switch)."""
    state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    return [{**{k: v for k, v in e.items() if isinstance(v, (int, float))}, "phase": phase}
            for e in state.get("log_history", [])]
