"""The one plot helper: a matplotlib Figure drawn headless (Agg) and returned as PNG bytes.

Every report plot goes through `png_figure`, so the backend choice, the
figure's DPI and the PNG encoding are said once. Margins are fixed by the
caller (`fig.subplots_adjust`) where it matters: tight_layout costs about half
a second a plot.
"""
from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


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
