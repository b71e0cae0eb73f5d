"""The one plot helper: a matplotlib Figure drawn headless (Agg) and returned as PNG bytes.

Every report plot goes through `png_figure`, so the backend choice, the
figure's DPI and the PNG encoding are said once. Margins are fixed by the
caller (`fig.subplots_adjust`) where it matters: tight_layout costs about half
a second a plot. `histogram_png` is the reports' one histogram (a stat with the
bounds a filter cuts at).
"""
from __future__ import annotations

PRESENTATION = True  # report images only: no step's cache key covers this module

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np


class _Png:
    """What `png_figure` yields: the figure to draw on; `.data` holds the PNG once the block ends."""

    def __init__(self, fig: Any) -> None:
        self.fig = fig
        self.data = b""


@contextmanager
def png_figure(figsize: tuple[float, float] = (6, 3.5), dpi: int = 100) -> Iterator[_Png]:
    """`with png_figure((6, 3)) as out: ax = out.fig.subplots(); ...` then `out.data` is the PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    out = _Png(Figure(figsize=figsize, dpi=dpi))
    yield out
    buf = io.BytesIO()
    out.fig.savefig(buf, format="png")
    out.data = buf.getvalue()


def histogram_png(stat: str, values: np.ndarray, low: float | None, high: float | None, *, log: bool = False,
                  bins: int = 60, sources: tuple[str | None, str | None] = (None, None),
                  ylabel: str = "chunks") -> bytes:
    """The one histogram of the reports: a stat's finite values with its low/high bounds drawn (where a
    filter cuts), each bound labelled with where it came from."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    with png_figure((6, 3.5), dpi=100) as out:
        ax = out.fig.subplots()
        _bars(ax, x, log, bins)
        rejected = sum(_bound_line(ax, x, bound, side, src)
                       for bound, side, src in ((low, "low", sources[0]), (high, "high", sources[1])))
        ax.set_title(f"{stat}: n={len(x)}, rejected={rejected}")
        ax.set_xlabel(stat)
        ax.set_ylabel(ylabel)
        if low is not None or high is not None:
            ax.legend(fontsize=8)
        out.fig.subplots_adjust(left=0.12, right=0.97, bottom=0.15, top=0.9)
    return out.data


def _bars(ax: Any, x: np.ndarray, log: bool, bins: int) -> None:
    """The histogram itself; on log bins from the smallest positive value when `log`."""
    if not len(x):
        return
    if log and (x > 0).any():
        lo, hi = max(x[x > 0].min(), 1e-9), x.max()
        edges = np.geomspace(lo, hi if hi > lo else lo * 10, bins + 1)
        ax.hist(np.clip(x, lo, None), bins=edges, color="#4C72B0")
        ax.set_xscale("log")
    else:
        ax.hist(x, bins=bins, color="#4C72B0")


def _bound_line(ax: Any, x: np.ndarray, bound: float | None, side: str, src: str | None) -> int:
    """Draw one bound; the number of values beyond it."""
    if bound is None:
        return 0
    ax.axvline(bound, color="#C44E52", linestyle="--", label=f"{side} {bound:.4g} ({src or '?'})")
    return int((x < bound).sum() if side == "low" else (x > bound).sum())
