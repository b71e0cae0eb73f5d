"""Fixed and automatic (3σ / MAD) bounds for one stat, from its corpus values."""
from __future__ import annotations

from typing import Any

import numpy as np

from infuse.operators.filter.config import AutoBound

MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution is 0.6745 σ


def finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values[np.isfinite(values)]


def auto_bounds(values: np.ndarray, auto: AutoBound) -> dict[str, Any]:
    """[center − k·spread, center + k·spread] on the chosen scale, mapped back to stat units."""
    x = finite(values)
    info: dict[str, Any] = {"k": auto.k, "scale": auto.scale, "method": auto.method, "side": auto.side}
    if len(x) < auto.min_samples:
        info["skipped"] = f"{len(x)} values < min_samples {auto.min_samples}"
        return info
    if auto.scale == "log":
        if (x < 0).any():
            info["skipped"] = "log scale needs non-negative values"
            return info
        x = np.log1p(x)
    if auto.method == "sigma":
        center, spread = float(x.mean()), float(x.std())  # population σ (ddof=0)
    else:
        center = float(np.median(x))
        spread = MAD_TO_SIGMA * float(np.median(np.abs(x - center)))
    lo, hi = center - auto.k * spread, center + auto.k * spread
    if auto.scale == "log":
        lo, hi = float(np.expm1(lo)), float(np.expm1(hi))
    info.update(center=center, spread=spread)
    if auto.side in ("both", "low"):
        info["low"] = lo
    if auto.side in ("both", "high"):
        info["high"] = hi
    return info


def fit_stat(values: np.ndarray, fixed_low: float | None, fixed_high: float | None,
             auto: AutoBound | None) -> dict[str, Any]:
    """Bounds actually used for one stat: a fixed bound wins over the auto one on its side."""
    x = finite(values)
    out: dict[str, Any] = {
        "n": int(len(x)),
        "mean": float(x.mean()) if len(x) else None,
        "std": float(x.std()) if len(x) else None,
        "median": float(np.median(x)) if len(x) else None,
        "min_value": float(x.min()) if len(x) else None,
        "max_value": float(x.max()) if len(x) else None,
    }
    a = auto_bounds(x, auto) if auto is not None else {}
    if auto is not None and auto.scale == "log" and a.get("low") is not None and a["low"] < 0:
        a["low"] = 0.0  # log scale is for non-negative stats: expm1 of a far-left bound dips below 0
    if auto is not None:
        out["auto"] = a
    low, low_src = (fixed_low, "fixed") if fixed_low is not None else (a.get("low"), "auto" if "low" in a else None)
    high, high_src = (fixed_high, "fixed") if fixed_high is not None else (a.get("high"), "auto" if "high" in a else None)
    out.update(low=low, high=high, low_source=low_src if low is not None else None,
               high_source=high_src if high is not None else None)
    sources = {s for s in (out["low_source"], out["high_source"]) if s}
    out["source"] = "+".join(sorted(sources)) if sources else "none"
    out["would_reject_low"] = int((x < low).sum()) if low is not None else 0
    out["would_reject_high"] = int((x > high).sum()) if high is not None else 0
    return out
