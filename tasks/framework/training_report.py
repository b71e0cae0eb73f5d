"""How a training run is shown: the progress bar that follows the worker's events, and the step's report.

Presentation only: not part of any step's cache key (step.KEY_PREFIXES), so
rewording a line here recomputes nothing.
"""
from __future__ import annotations

from typing import Any

from infuse.operators.train.report import loss_curve_png, metrics_rows, reward_curve_png
from infuse.tasks.framework.step import StepContext, StepReport


class TrainingProgress:
    """The worker's events as a progress bar (steps, loss, tokens/s, ETA) in the terminal and the UI."""

    def __init__(self, ctx: StepContext, desc: str) -> None:
        self.ctx, self.desc = ctx, desc
        self.bar: Any = None

    def __call__(self, e: dict[str, Any]) -> None:
        if e["event"] == "start" and self.bar is None:
            self.bar = self.ctx.progress(e["total_steps"], self.desc, "steps")
        if self.bar is None:
            return
        if e["event"] in ("start", "log"):
            self.bar.set(e["step"], **_bar_info(e))
        elif e["event"] == "checkpoint":
            self.ctx.log.info(f"{self.desc}: checkpoint at step {e['step']}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _bar_info(e: dict[str, Any]) -> dict[str, Any]:
    info: dict[str, Any] = {k: round(e[k], 4) for k in ("loss", "eval_loss") if k in e}
    if "tokens_per_s" in e:
        info["tok/s"] = round(e["tokens_per_s"])
    if e.get("phase"):
        info["phase"] = e["phase"]
    return info


def training_report(result: dict[str, Any], title: str, rows_in: int | None, kept: int | None,
                    unit: str = "samples") -> StepReport:
    """The worker's result as the step's report: a summary, the metrics table and the loss curve."""
    hybrid = result.get("hybrid")
    md = [_headline(result), _template_line(result.get("template", {})), _hybrid_line(hybrid),
          _ranks_line(result.get("ranks") or [])]
    png = loss_curve_png(result.get("history", []), title, hybrid["switch_step"] if hybrid else None)
    return StepReport(rows_in=rows_in, kept=kept, unit_in=unit, unit_out=unit,
                      markdown="\n\n".join(line for line in md if line is not None),
                      tables={"metrics": metrics_rows(result)}, images={"loss-curve": png}, stats=_stats(result))


def sft_report(result: dict[str, Any], method: str) -> StepReport:
    """sft's training report: samples in and kept over its train and eval splits."""
    prep = result["prep"]
    rows_in = sum(prep.get(s, {}).get("samples", 0) for s in ("train", "eval"))
    kept = sum(prep.get(s, {}).get("kept", 0) for s in ("train", "eval"))
    return training_report(result, f"sft ({method})", rows_in, kept)


def dpo_report(result: dict[str, Any], loss_type: str, beta: float) -> StepReport:
    """dpo's training report, plus the reward margin over training: its plot, first and last values."""
    prep = result["prep"]["train"]
    report = training_report(result, f"dpo ({loss_type}, beta {beta})", prep["samples"], prep["kept"], unit="pairs")
    report.images["reward-margins"] = reward_curve_png(result.get("history", []), f"dpo ({loss_type})")
    hist = [r for r in result.get("history", []) if "rewards/margins" in r]
    if hist:
        first, last = hist[0], hist[-1]
        reward = ("beta x mean token log-prob, no reference" if loss_type in ("simpo", "orpo")
                  else "beta x log-ratio to the SFT model")
        report.markdown += (f"\n\nReward margin (chosen - rejected, {reward}) {first['rewards/margins']:.4f} at "
                            f"step {first['step']} -> {last['rewards/margins']:.4f} at step {last['step']}; reward "
                            f"accuracy {last.get('rewards/accuracies', float('nan')):.2f}.")
        report.stats["rewards"] = {"first_margin": first["rewards/margins"], "last_margin": last["rewards/margins"],
                                   "last_accuracy": last.get("rewards/accuracies")}
    report.stats["ref_check"] = result.get("ref_check", {})
    return report


def _headline(result: dict[str, Any]) -> str:
    m = result.get("metrics", {})
    resumed = f" (resumed at step {result['resumed_from']})" if result.get("resumed_from") else ""
    mfu = f", MFU {m['mfu']:.1%}" if m.get("mfu") is not None else ""
    return (f"**{result.get('method')}**, {result.get('total_steps')} steps{resumed}, {m.get('tokens')} tokens in "
            f"{m.get('train_s')} s: {m.get('tokens_per_s')} tokens/s on {m.get('world_size')} x "
            f"{m.get('gpu') or m.get('device')}, peak memory {m.get('peak_memory_gb')} GB{mfu}.")


def _template_line(tpl: dict[str, Any]) -> str:
    return f"Chat template `{tpl.get('name')}` (sha256 {str(tpl.get('sha256'))[:12]}), saved with the model."


def _hybrid_line(hybrid: dict[str, Any] | None) -> str | None:
    if not hybrid:
        return None
    if not (hybrid["full_losses"] and hybrid["lora_losses"]):
        return ""
    return (f"Hybrid: full fine-tuning for steps 1-{hybrid['switch_step']}, then LoRA to step "
            f"{hybrid['total_steps']}; last full loss {hybrid['full_losses'][-1]:.4f}, last LoRA loss "
            f"{hybrid['lora_losses'][-1]:.4f}.")


def _ranks_line(ranks: list[dict[str, Any]]) -> str | None:
    if len(ranks) < 2 or not all(r.get("weights") for r in ranks):
        return None
    same = len({r["weights"] for r in ranks}) == 1
    return (f"{len(ranks)} data-parallel ranks; their weights after training "
            f"{'agree' if same else '**differ**'} (checksum).")


def _stats(result: dict[str, Any]) -> dict[str, Any]:
    stats = {"metrics": result.get("metrics", {}), "total_steps": result.get("total_steps"),
             "resumed_from": result.get("resumed_from", 0), "template": result.get("template", {}),
             "prep": {k: v for k, v in result.get("prep", {}).items() if k != "rejects"}}
    if result.get("hybrid"):
        stats["hybrid"] = result["hybrid"]
    return stats
