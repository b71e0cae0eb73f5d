"""What every training run in the worker (sft, cpt, dpo) sets up the same way.

A `Session` holds the device decisions (GPU or CPU, dtype, attention kernel),
the distributed state, the tokenizer with its chat template installed and
checked, and the helpers that prepare data once (rank 0 first, the others
load it), lay out the rows in training order, turn options into trainer
arguments, and write the final model's card and result.json. Beside it: the
newest complete checkpoint to resume from (`last_checkpoint`) and the loss
history as result.json keeps it (`history`).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from infuse.operators.train import data as D
from infuse.operators.train import templates
from infuse.operators.train.card import check_template, fingerprint, write_card
from infuse.operators.train.config import Job
from infuse.operators.train.devices import peak_flops
from infuse.operators.train.modeling import on_gpu, resolve_attn, resolve_dtype
from infuse.operators.train.trainer import emit, peak_memory_bytes, say


def atomic_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)


def complete_checkpoint(p: Path) -> bool:
    """Whether a checkpoint's trainer state was written to the end: the Trainer writes trainer_state.json last,
    and not atomically, so a kill mid-write leaves one that does not parse."""
    try:
        json.loads((p / "trainer_state.json").read_text(encoding="utf-8"))
        return True
    except (OSError, ValueError):
        return False


def last_checkpoint(folder: Path) -> str | None:
    """The newest complete checkpoint-N under folder."""
    if not folder.is_dir():
        return None
    done = [p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit() and complete_checkpoint(p)]
    return str(max(done, key=lambda p: int(p.name.split("-")[-1]))) if done else None


def checkpoint_step(checkpoint: str | None) -> int:
    """The optimizer step a checkpoint-N directory was saved at; 0 for none (a run from the start)."""
    return int(Path(checkpoint).name.split("-")[-1]) if checkpoint else 0


def history(log_history: list[dict[str, Any]], offset: int = 0, phase: str = "") -> list[dict[str, Any]]:
    """The trainer's log history as result.json keeps it: the numbers of each entry, its step on the run's
    own scale (offset: hybrid's second phase starts at the switch) and, when given, its phase."""
    out = []
    for e in log_history:
        row = {k: v for k, v in e.items() if isinstance(v, (int, float))}
        row["step"] = int(e.get("step", 0)) + offset
        if phase:
            row["phase"] = phase
        out.append(row)
    return out


def link_tree(src: Path, dst: Path) -> None:
    """Copy a directory by hard links where the filesystem allows (no second copy of the weights)."""
    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=link, dirs_exist_ok=True)


class Session:
    """One training run's setup in one worker process (every rank builds its own)."""

    def __init__(self, job: Job) -> None:
        from accelerate import PartialState
        from transformers import AutoConfig, AutoTokenizer

        self.job = job
        self.out = Path(job.output_dir)
        self.gpu = on_gpu()
        self.state = PartialState(cpu=not self.gpu)  # the same state the Trainer's arguments will find
        self.world = self.state.num_processes
        self.rank = self.state.process_index
        self.is_main = self.state.is_main_process
        self.dtype = resolve_dtype(job.model.get("dtype"), self.gpu)
        self.attn = resolve_attn(job.model.get("attn"), self.gpu, self.dtype)
        self.config = AutoConfig.from_pretrained(job.base)
        self.tokenizer = AutoTokenizer.from_pretrained(job.base)
        self.template = templates.resolve(self.tokenizer, self.config.model_type, job.model.get("chat_template"))
        base_card = check_template(job.base)  # an infuse model as base: its own template must be intact
        if base_card and base_card.get("template", {}).get("sha256") not in (None, self.template.sha256):
            raise templates.TemplateError(
                f"the base model {job.base} was trained with chat template {base_card['template'].get('name')!r} "
                f"and this run would use {self.template.name!r}; set model.chat_template to the same template")
        templates.install(self.tokenizer, self.template)
        templates.check_trainable(self.tokenizer, self.template)
        if self.gpu:
            torch.backends.cuda.matmul.allow_tf32 = True
        say(f"{job.kind}: {job.method} on {self.world} x {'GPU ' + torch.cuda.get_device_name() if self.gpu else 'CPU'}"
            f", dtype {str(self.dtype).replace('torch.', '')}, attention {self.attn}, template {self.template.name}")

    # ---- data ---------------------------------------------------------------
    def prepared(self, build: Any) -> Any:
        """Data built once by rank 0 into prepared/ (kept across a kill), then loaded by every rank.
        `build()` returns ({name: Dataset}, info dict)."""
        from datasets import load_from_disk

        folder = self.out / "prepared"
        with self.state.main_process_first():
            if self.is_main and not (folder / "info.json").is_file():
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir(parents=True)
                sets, info = build()
                for name, ds in sets.items():
                    ds.save_to_disk(str(folder / name))
                atomic_json(folder / "info.json", {**info, "sets": sorted(sets)})
            info = json.loads((folder / "info.json").read_text(encoding="utf-8"))
            sets = {name: load_from_disk(str(folder / name)) for name in info["sets"]}
        return sets, info

    def schedule(self, rows: Any) -> tuple[Any, int, int]:
        """(the rows in training order, optimizer steps, rows per step): as many seeded passes over `rows` as
        the steps take; rows per step is the global batch (batch size x grad_accum x processes)."""
        t = self.job.train
        rows_per_step = t.batch_size * t.grad_accum * self.world
        total, passes = D.plan_steps(len(rows), rows_per_step, t.epochs, t.max_steps)
        return D.ordered(rows, passes, t.seed), total, rows_per_step

    # ---- trainer arguments ----------------------------------------------------
    def args(self, output_dir: Path, max_steps: int, has_eval: bool, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for the run's trl config (SFTConfig, DPOConfig, CPOConfig, ORPOConfig) from the job's
        TrainOptions."""
        t, job = self.job.train, self.job
        save_steps = t.save_steps or max(max_steps // 4, 1)
        eval_steps = job.eval_steps or max(max_steps // 5, 1)
        early = bool(job.early_stopping_patience) and has_eval
        if early:
            save_steps = eval_steps  # the best checkpoint must be one that was evaluated
        kw: dict[str, Any] = dict(
            output_dir=str(output_dir), max_steps=max_steps, per_device_train_batch_size=t.batch_size,
            per_device_eval_batch_size=t.batch_size, gradient_accumulation_steps=t.grad_accum,
            learning_rate=t.learning_rate, lr_scheduler_type=t.lr_scheduler, warmup_steps=t.warmup_ratio,
            weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm, seed=t.seed, data_seed=t.seed,
            logging_steps=t.logging_steps, logging_first_step=True, save_strategy="steps", save_steps=save_steps,
            save_total_limit=t.save_total_limit, eval_strategy="steps" if has_eval else "no",
            eval_steps=eval_steps if has_eval else None, bf16=self.dtype == torch.bfloat16 and self.gpu,
            fp16=self.dtype == torch.float16 and self.gpu, use_cpu=not self.gpu, report_to="none",
            disable_tqdm=True, dataloader_num_workers=0, train_sampling_strategy="sequential",
            activation_checkpointing=t.gradient_checkpointing,
            activation_checkpointing_kwargs={"use_reentrant": False} if t.gradient_checkpointing else None,
            ddp_find_unused_parameters=False, optim="adamw_torch_fused" if self.gpu else "adamw_torch",
            load_best_model_at_end=early, metric_for_best_model="eval_loss" if early else None,
            greater_is_better=False if early else None, average_tokens_across_devices=True,
            save_only_model=False, log_level="warning",
        )
        kw.update(overrides)
        return kw

    def callbacks(self, has_eval: bool) -> list[Any]:
        if self.job.early_stopping_patience and has_eval:
            from transformers import EarlyStoppingCallback

            return [EarlyStoppingCallback(early_stopping_patience=self.job.early_stopping_patience)]
        return []

    # ---- after training -------------------------------------------------------
    def rank_report(self, trainer: Any) -> list[dict[str, Any]]:
        """Each rank's view after training (tokens it saw, its first batch, a checksum of its trainable
        weights), gathered on every rank: under data parallelism the weights must agree."""
        from accelerate.utils import gather_object

        digest = hashlib.sha256()
        sharded = getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_deepspeed_enabled", False)
        if not sharded:
            for name, p in trainer.accelerator.unwrap_model(trainer.model).named_parameters():
                if p.requires_grad:
                    digest.update(name.encode())
                    digest.update(p.detach().float().cpu().numpy().tobytes())
        mine = {"rank": self.rank, "tokens": trainer.local_tokens, "first_batch": trainer.first_batch_sha,
                "weights": digest.hexdigest()[:16] if not sharded else None}
        return gather_object([mine]) if self.world > 1 else [mine]

    def metrics(self, tokens: int, train_s: float, n_params: int) -> dict[str, Any]:
        tps = tokens / train_s if train_s > 0 else 0.0
        out: dict[str, Any] = {"tokens": tokens, "train_s": round(train_s, 2), "tokens_per_s": round(tps, 1),
                               "peak_memory_gb": round(peak_memory_bytes() / 2**30, 3), "params": n_params,
                               "world_size": self.world, "device": "cuda" if self.gpu else "cpu",
                               "attn": self.attn, "dtype": str(self.dtype).replace("torch.", "")}
        if self.gpu:
            name = torch.cuda.get_device_name()
            peak = peak_flops(name)
            out["gpu"] = name
            if peak:
                out["mfu"] = round(6 * n_params * tps / (self.world * peak), 4)
        return out

    def set_generation_ends(self, model: Any) -> None:
        gen = getattr(model, "generation_config", None)
        if gen is not None:
            gen.eos_token_id = templates.eot_ids(self.tokenizer, self.template)
            gen.pad_token_id = self.tokenizer.pad_token_id

    def final_dir(self) -> Path:
        final = self.out / "final"
        if self.is_main and final.exists():
            shutil.rmtree(final)
        self.state.wait_for_everyone()
        return final

    def card(self, **facts: Any) -> dict[str, Any]:
        from importlib.metadata import version

        job = self.job
        return {"kind": job.kind, "method": job.method, "template": self.template.to_card(),
                "base": {"path": job.base, "fingerprint": fingerprint(job.base), "model_type": self.config.model_type,
                         **job.card.get("base", {})},
                "data": job.card.get("data", {}), "train": job.train.model_dump(mode="json"),
                "lora": job.lora.model_dump(mode="json") if job.method != "full" else None,
                "versions": {d: version(d) for d in ("torch", "transformers", "trl", "peft", "accelerate")},
                **facts}

    def finish(self, final: Path, card: dict[str, Any], result: dict[str, Any]) -> None:
        """Card into the model, result.json beside it (rank 0), then every rank leaves together."""
        if self.is_main:
            for junk in ("training_args.bin", "README.md"):  # a pickle of the arguments; a hub model card
                (final / junk).unlink(missing_ok=True)
            write_card(final, card)
            atomic_json(self.out / "result.json", {**result, "card": card})
            emit("done", metrics=result.get("metrics", {}))
        self.state.wait_for_everyone()
