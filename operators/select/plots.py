"""The IFD histogram with its cuts drawn."""
from __future__ import annotations

import numpy as np

from infuse.operators.common.plots import png_figure


def ifd_histogram_png(name: str, values: np.ndarray, max_ifd: float | None, keep_from: float | None,
                      budget: str, bins: int = 40) -> bytes:
    """Every scored row's IFD; red: the `>= max_ifd` cut, orange: the lowest IFD the budget kept."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    with png_figure((6, 3.5), dpi=100) as out:
        ax = out.fig.subplots()
        if len(x):
            ax.hist(x, bins=bins, color="#4C72B0")
        if max_ifd is not None:
            high = int((x >= max_ifd).sum())
            ax.axvline(max_ifd, color="#C44E52", linestyle="--", label=f"drop {name} >= {max_ifd:g} ({high})")
        if keep_from is not None:
            below = int((x < keep_from).sum())
            ax.axvline(keep_from, color="#DD8452", linestyle="-",
                       label=f"{budget}: keep {name} >= {keep_from:.3g} (drop {below})")
        ax.set_title(f"{name}: n={len(x)}, median={np.median(x):.3g}" if len(x) else f"{name}: no scored rows")
        ax.set_xlabel(f"{name} = s(A|Q) / s(A)" if name == "ifd" else f"{name} = exp(s(A|Q) - s(A))")
        ax.set_ylabel("rows")
        if max_ifd is not None or keep_from is not None:
            ax.legend(fontsize=8)
        out.fig.tight_layout()
    return out.data
