"""The IFD histogram with its cuts drawn (matplotlib, Agg: no display needed)."""
from __future__ import annotations

import io

import numpy as np


def ifd_histogram_png(name: str, values: np.ndarray, max_ifd: float | None, keep_from: float | None,
                      budget: str, bins: int = 40) -> bytes:
    """Every scored row's IFD; red: the `>= max_ifd` cut, orange: the lowest IFD the budget kept."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    fig = Figure(figsize=(6, 3.5), dpi=100)
    ax = fig.subplots()
    if len(x):
        ax.hist(x, bins=bins, color="#4C72B0")
    dropped_high = int((x >= max_ifd).sum()) if max_ifd is not None else 0
    if max_ifd is not None:
        ax.axvline(max_ifd, color="#C44E52", linestyle="--", label=f"drop {name} >= {max_ifd:g} ({dropped_high})")
    if keep_from is not None:
        below = int((x < keep_from).sum())
        ax.axvline(keep_from, color="#DD8452", linestyle="-",
                   label=f"{budget}: keep {name} >= {keep_from:.3g} (drop {below})")
    ax.set_title(f"{name}: n={len(x)}, median={np.median(x):.3g}" if len(x) else f"{name}: no scored rows")
    ax.set_xlabel(f"{name} = s(A|Q) / s(A)" if name == "ifd" else f"{name} = exp(s(A|Q) - s(A))")
    ax.set_ylabel("rows")
    if max_ifd is not None or keep_from is not None:
        ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
