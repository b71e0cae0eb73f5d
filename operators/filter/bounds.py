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
    out = _summary(x)
    a = _auto(x, auto)
    if auto is not None:
        out["auto"] = a
    low, low_src = _chosen(fixed_low, a, "low")
    high, high_src = _chosen(fixed_high, a, "high")
    out.update(low=low, high=high, low_source=low_src, high_source=high_src)
    sources = {s for s in (low_src, high_src) if s}
    out["source"] = "+".join(sorted(sources)) if sources else "none"
    out["would_reject_low"] = int((x < low).sum()) if low is not None else 0
    out["would_reject_high"] = int((x > high).sum()) if high is not None else 0
    return out


_SUMMARY = ("mean", "std", "median", "min_value", "max_value")


def _summary(x: np.ndarray) -> dict[str, Any]:
    """Count, mean, population std, median, min and max of the finite values (None for no values)."""
    if not len(x):
        return {"n": 0, **dict.fromkeys(_SUMMARY)}
    return {"n": int(len(x)), "mean": float(x.mean()), "std": float(x.std()), "median": float(np.median(x)),
            "min_value": float(x.min()), "max_value": float(x.max())}


def _auto(x: np.ndarray, auto: AutoBound | None) -> dict[str, Any]:
    """The auto bounds ({} without `auto`); on log scale the low bound is not below 0."""
    if auto is None:
        return {}
    a = auto_bounds(x, auto)
    if auto.scale == "log" and a.get("low") is not None and a["low"] < 0:
        a["low"] = 0.0  # log scale is for non-negative stats: expm1 of a far-left bound dips below 0
    return a


def _chosen(fixed: float | None, auto: dict[str, Any], side: str) -> tuple[float | None, str | None]:
    """(bound, where it came from) for one side: the fixed one, else the auto one, else (None, None)."""
    if fixed is not None:
        return fixed, "fixed"
    value = auto.get(side)
    return value, ("auto" if value is not None else None)
