"""Histogram PNGs of a stat with its bounds (matplotlib, Agg: no display needed)."""
from __future__ import annotations

import io

import numpy as np


def histogram_png(stat: str, values: np.ndarray, low: float | None, high: float | None, *, log: bool = False,
                  bins: int = 60, sources: tuple[str | None, str | None] = (None, None),
                  ylabel: str = "chunks") -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    fig = Figure(figsize=(6, 3.5), dpi=100)
    ax = fig.subplots()
    if len(x):
        if log and (x > 0).any():
            lo, hi = max(x[x > 0].min(), 1e-9), x.max()
            edges = np.geomspace(lo, hi if hi > lo else lo * 10, bins + 1)
            ax.hist(np.clip(x, lo, None), bins=edges, color="#4C72B0")
            ax.set_xscale("log")
        else:
            ax.hist(x, bins=bins, color="#4C72B0")
    rejected = 0
    for bound, side, src in ((low, "low", sources[0]), (high, "high", sources[1])):
        if bound is None:
            continue
        rejected += int((x < bound).sum() if side == "low" else (x > bound).sum())
        ax.axvline(bound, color="#C44E52", linestyle="--", label=f"{side} {bound:.4g} ({src or '?'})")
    ax.set_title(f"{stat}: n={len(x)}, rejected={rejected}")
    ax.set_xlabel(stat)
    ax.set_ylabel(ylabel)
    if low is not None or high is not None:
        ax.legend(fontsize=8)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.15, top=0.9)  # fixed margins: tight_layout costs ~0.5 s a plot
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
