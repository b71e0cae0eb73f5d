"""What a training step reports: the loss curve (train and eval) as a PNG, and the metrics as rows."""
from __future__ import annotations

from typing import Any

from infuse.operators.common.plots import png_figure


def loss_curve_png(history: list[dict[str, Any]], title: str, switch_step: int | None = None) -> bytes:
    """Train loss per logged step and eval loss where evaluated; a hybrid run's switch as a line."""
    train = [(r["step"], r["loss"]) for r in history if "loss" in r]
    evals = [(r["step"], r["eval_loss"]) for r in history if "eval_loss" in r]
    with png_figure((6.5, 3.6)) as out:
        ax = out.fig.subplots()
        if train:
            ax.plot(*zip(*train), color="#4C72B0", label="train loss", linewidth=1.4)
        if evals:
            ax.plot(*zip(*evals), color="#DD8452", marker="o", label="eval loss", linewidth=1.4)
        if switch_step:
            ax.axvline(switch_step, color="#55A868", linestyle="--", label=f"full -> LoRA at step {switch_step}")
        ax.set_title(title)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss (trained tokens)")
        if train or evals:
            ax.legend(fontsize=8)
        out.fig.tight_layout()
    return out.data


def metrics_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row of the final figures, for the step's UI table."""
    m = result.get("metrics", {})
    hist = result.get("history", [])
    losses = [r["loss"] for r in hist if "loss" in r]
    evals = [r["eval_loss"] for r in hist if "eval_loss" in r]
    row = {"method": result.get("method"), "steps": result.get("total_steps"),
           "resumed_from": result.get("resumed_from", 0), "first_loss": round(losses[0], 4) if losses else None,
           "last_loss": round(losses[-1], 4) if losses else None, "last_eval_loss": round(evals[-1], 4) if evals
           else None, "tokens_per_s": m.get("tokens_per_s"), "peak_memory_gb": m.get("peak_memory_gb"),
           "mfu": m.get("mfu"), "world_size": m.get("world_size"), "device": m.get("gpu") or m.get("device")}
    if "hybrid" in result:
        row["switch_step"] = result["hybrid"]["switch_step"]
    return [row]


def reward_curve_png(history: list[dict[str, Any]], title: str) -> bytes:
    """DPO's reward margin (chosen - rejected) and reward accuracy per logged step, on two axes."""
    rows = [r for r in history if "rewards/margins" in r]
    with png_figure((6.5, 3.6)) as out:
        ax = out.fig.subplots()
        if rows:
            steps = [r["step"] for r in rows]
            ax.plot(steps, [r["rewards/margins"] for r in rows], color="#4C72B0", linewidth=1.4,
                    label="reward margin")
            ax.axhline(0, color="#999999", linewidth=0.8)
            acc = ax.twinx()
            acc.plot(steps, [r.get("rewards/accuracies", float("nan")) for r in rows], color="#DD8452",
                     linewidth=1.2, linestyle="--", label="reward accuracy")
            acc.set_ylim(-0.05, 1.05)
            acc.set_ylabel("accuracy (chosen > rejected)")
            lines = ax.get_lines()[:1] + acc.get_lines()
            ax.legend(lines, [str(line.get_label()) for line in lines], fontsize=8, loc="upper left")
        ax.set_title(title)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("margin (beta x log-ratio)")
        out.fig.tight_layout()
    return out.data
