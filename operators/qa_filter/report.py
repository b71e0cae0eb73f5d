"""What the qa_filter step reports: samples in and kept per strategy, the kept answers' lengths, a histogram."""
from __future__ import annotations

import statistics
from typing import Any

import numpy as np
import pyarrow as pa

from infuse.operators.qa_filter.filter import FilterResult

PRESENTATION = True  # it only reports on the step's output: not part of the step's cache key


def answer_lengths(qa: pa.Table) -> list[int]:
    """The length of every assistant turn of a table of samples (for the report's distribution)."""
    return [len(m["content"]) for msgs in qa.column("messages").to_pylist() for m in msgs or []
            if m.get("role") == "assistant"]


def by_strategy(qa: pa.Table, kept: pa.Table) -> dict[str, dict[str, int]]:
    """strategy -> samples in and kept."""
    out: dict[str, dict[str, int]] = {}
    for s in qa.column("strategy").to_pylist():
        out.setdefault(s, {"in": 0, "kept": 0})["in"] += 1
    for s in kept.column("strategy").to_pylist():
        out[s]["kept"] += 1
    return out


def strategy_table(counts: dict[str, dict[str, int]], kept: pa.Table) -> list[dict[str, Any]]:
    """One row per strategy: samples in, kept, and the median length of its kept answers."""
    answers: dict[str, list[int]] = {}
    for strategy, msgs in zip(kept.column("strategy").to_pylist(), kept.column("messages").to_pylist()):
        answers.setdefault(strategy, []).extend(len(m["content"]) for m in msgs if m["role"] == "assistant")
    return [{"strategy": k, **v, "median_answer_chars": statistics.median(answers[k]) if k in answers else None}
            for k, v in sorted(counts.items())]


def length_stats(lengths: list[int], floor: int) -> tuple[dict[str, Any], str]:
    """Median and spread of the kept answers (one per assistant turn), and the report's line about them."""
    if not lengths:
        return {"n": 0}, "No answers kept."
    q = np.percentile(lengths, [10, 25, 75, 90]).tolist()
    short = sum(1 for n in lengths if n < 50)
    stats = {"n": len(lengths), "median": float(statistics.median(lengths)), "mean": round(float(np.mean(lengths)), 1),
             "p10": q[0], "p25": q[1], "p75": q[2], "p90": q[3], "min": min(lengths), "max": max(lengths),
             "under_50_chars": short, "floor": floor}
    md = (f"Answer length (characters, one per assistant turn, {len(lengths)} kept): median **{stats['median']:.0f}**, "
          f"p10 {q[0]:.0f}, p90 {q[3]:.0f}, max {stats['max']}; {short} ({short / len(lengths):.0%}) under 50 characters; "
          f"floor {floor}.")
    return stats, md


def summary(qa: pa.Table, result: FilterResult, floor: int) -> dict[str, Any]:
    """The step report's markdown, tables, images and stats (StepReport's fields of those names)."""
    from infuse.operators.common.plots import histogram_png

    counts = by_strategy(qa, result.kept)
    lengths = answer_lengths(result.kept)
    stats, md = length_stats(lengths, floor)
    images = {"answer-length": histogram_png("answer length (chars)", np.array(lengths, dtype=float), floor or None,
                                             None, ylabel="assistant turns", sources=("floor", None))} if lengths else {}
    return {"markdown": md, "tables": {"by-strategy": strategy_table(counts, result.kept)}, "images": images,
            "stats": {"by_strategy": counts, "answer_length": stats,
                      "turns_dropped": sum(1 for r in result.rejects if r.reason.endswith("_turn")),
                      "checks": result.stats}}
