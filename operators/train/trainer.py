"""The trainer of sft and cpt (trl's SFTTrainer, a little changed) and the callbacks that report every run.

The loss is taken only where labels are set, and only those positions get
logits. On a GPU with Triton that is trl's own fused, chunked LM head. On CPU
trl would score every position (its compact path needs Triton), which for a
262k-token vocabulary costs more than the rest of the model: here the model
is asked for the logits of the loss positions only (`logits_to_keep` with
their indices), so a step costs what the trained tokens cost.

Events go to stdout on rank 0 as `EVENT_PREFIX + json` lines, which the
launcher turns into the progress bar and the step's report.
"""
from __future__ import annotations

import hashlib
import json
import math
import resource
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F
from transformers import TrainerCallback
from trl import SFTTrainer

from infuse.operators.train.launch import EVENT_PREFIX


def is_main() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


def emit(event: str, **data: Any) -> None:
    """One event line for the launcher (rank 0 only)."""
    if is_main():
        sys.stdout.write(EVENT_PREFIX + json.dumps({"event": event, **data}, default=float) + "\n")
        sys.stdout.flush()


def say(line: str) -> None:
    """A human log line (rank 0 only): it ends up in the Prefect task log."""
    if is_main():
        print(line, flush=True)


def _fused_head_is_compact(device: torch.device) -> bool:
    """trl's fused LM head scores only the loss positions on CUDA/XPU with Triton."""
    from transformers.utils import is_triton_available

    return device.type in ("cuda", "xpu") and is_triton_available()


class InfuseTrainer(SFTTrainer):
    """SFTTrainer with logits only at loss positions on CPU, an optional LR-schedule offset (hybrid's
    second phase continues the first phase's schedule) and per-rank bookkeeping (tokens, data seen)."""

    def __init__(self, *args: Any, lr_offset: int = 0, lr_total: int | None = None, **kwargs: Any) -> None:
        self.lr_offset, self.lr_total = lr_offset, lr_total
        self.local_tokens = 0
        self.first_batch_sha = ""
        super().__init__(*args, **kwargs)

    def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
        if not self.lr_offset or self.lr_scheduler is not None:
            return super().create_scheduler(num_training_steps, optimizer)
        from torch.optim.lr_scheduler import LambdaLR
        from transformers import get_scheduler

        optimizer = optimizer or self.optimizer
        total = self.lr_total or num_training_steps + self.lr_offset
        base = get_scheduler(self.args.lr_scheduler_type, optimizer=optimizer,
                             num_warmup_steps=self.args.get_warmup_steps(total), num_training_steps=total)
        offset = self.lr_offset
        lambdas = [lambda s, f=f: f(s + offset) for f in base.lr_lambdas]
        for group in optimizer.param_groups:  # LambdaLR multiplies the initial lr
            group["lr"] = group["initial_lr"]
        self.lr_scheduler = LambdaLR(optimizer, lambdas)
        return self.lr_scheduler

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        if self.model.training:
            self.local_tokens += int(inputs["input_ids"].numel())
            if not self.first_batch_sha:
                self.first_batch_sha = hashlib.sha256(inputs["input_ids"].cpu().numpy().tobytes()).hexdigest()[:16]
        if return_outputs or _fused_head_is_compact(inputs["input_ids"].device):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        return self._selected_logits_loss(model, inputs, num_items_in_batch)

    def _selected_logits_loss(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any) -> torch.Tensor:
        mode = "train" if self.model.training else "eval"
        labels = inputs["labels"]
        shifted = labels[:, 1:]
        keep = shifted != -100
        cols = keep.any(0).nonzero().flatten()
        if cols.numel() == 0:  # nothing to learn here: a zero that stays connected to the graph
            cols = torch.zeros(1, dtype=torch.long, device=labels.device)
        fwd = {k: v for k, v in inputs.items() if k != "labels"}
        fwd["use_cache"] = False
        logits = model(**fwd, logits_to_keep=cols).logits  # (batch, len(cols), vocab)
        target = shifted[:, cols]
        nll = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=-100,
                              reduction="sum")
        n_local = (target != -100).sum()
        denom = num_items_in_batch if num_items_in_batch is not None else n_local.clamp(min=1)
        loss = nll / denom
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes  # DDP averages the gradients over ranks
        with torch.no_grad():
            valid = target != -100
            correct = ((logits.argmax(-1) == target) & valid).sum()
            num_valid = self.accelerator.gather_for_metrics(valid.sum()).sum()
            num_correct = self.accelerator.gather_for_metrics(correct).sum()
            self._metrics[mode]["mean_token_accuracy"].append(
                (num_correct / num_valid).item() if num_valid > 0 else 0.0)
            if mode == "train":
                n = torch.tensor(inputs["position_ids"].size(1) if "position_ids" in inputs
                                 else int(inputs["attention_mask"].sum()), device=labels.device)
                self._total_train_tokens += int(self.accelerator.gather_for_metrics(n).sum().item())
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return loss


def peak_memory_bytes() -> int:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return int(torch.cuda.max_memory_allocated())
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux: KiB


def _sync() -> None:
    """Wait for the GPU, so step times are the work's, not the launch's."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


# What a log event reports of the trainer's logs (sft and cpt; dpo's reward margin and accuracy), when finite.
LOGGED = ("loss", "eval_loss", "learning_rate", "grad_norm", "mean_token_accuracy", "eval_mean_token_accuracy",
          "rewards/margins", "rewards/accuracies")


def _finite(logs: dict[str, Any], keys: tuple[str, ...]) -> dict[str, float]:
    """The keys of logs that hold finite numbers, as floats."""
    return {k: float(logs[k]) for k in keys
            if k in logs and isinstance(logs[k], (int, float)) and math.isfinite(float(logs[k]))}


class EventCallback(TrainerCallback):
    """Start / log / checkpoint events with steps, loss, tokens/s, for the launcher's progress and report.

    Steps are reported on the run's own scale (`step_offset`: hybrid's second phase starts at the switch)."""

    def __init__(self, total_steps: int, phase: str = "", step_offset: int = 0) -> None:
        self.total, self.phase, self.offset = total_steps, phase, step_offset
        self.train_s = 0.0
        self._t_step = 0.0
        self._last_tokens = 0
        self._last_train_s = 0.0
        self.tokens_per_s: list[float] = []

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if state.is_world_process_zero:
            emit("start", total_steps=self.total, step=state.global_step + self.offset, phase=self.phase)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        _sync()
        self._t_step = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        _sync()
        self.train_s += time.perf_counter() - self._t_step

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        step = state.global_step + self.offset
        info: dict[str, Any] = {"step": step, "total_steps": self.total, "phase": self.phase}
        info.update(_finite(logs, LOGGED))
        info.update(self._throughput(logs))
        if len(info) == 3:  # the end-of-training summary: nothing per step to say
            return
        emit("log", **info)
        parts = [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items()
                 if k not in ("step", "total_steps", "phase")]
        say(f"{self.phase + ' ' if self.phase else ''}step {step}/{self.total}: " + ", ".join(parts))

    def _throughput(self, logs: dict[str, Any]) -> dict[str, Any]:
        """At a training log: the tokens so far and, when training time passed, tokens per training second
        since the last one (also kept in tokens_per_s)."""
        if "num_tokens" not in logs or "loss" not in logs:
            return {}
        out: dict[str, Any] = {}
        tokens = int(logs["num_tokens"])
        dt = self.train_s - self._last_train_s
        if dt > 0 and tokens > self._last_tokens:
            out["tokens_per_s"] = (tokens - self._last_tokens) / dt
            self.tokens_per_s.append(out["tokens_per_s"])
        self._last_tokens, self._last_train_s = tokens, self.train_s
        out["tokens"] = tokens
        return out

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if state.is_world_process_zero:
            emit("checkpoint", step=state.global_step + self.offset, phase=self.phase,
                 path=f"{args.output_dir}/checkpoint-{state.global_step}")


class StopAt(TrainerCallback):
    """End training, with a checkpoint, once `step` optimizer steps are done (hybrid's switch)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if state.global_step >= self.step:
            control.should_training_stop = True
            control.should_save = True
