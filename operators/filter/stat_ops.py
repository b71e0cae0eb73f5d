"""One stat op of the filter step, resolved: what it computes, where it applies, and which chunks it drops.

The contract of a per-chunk filter: `compute` gives each chunk's stat value;
given the fitted bounds, `outside` says of each chunk keep (absent) or why it
goes (an OutOfBounds: the stat, its value, the bound crossed). QualityFilter
does the rest the same way for every op. Two kinds: infuse's own stats
(operators.filter.ops) and data-juicer's stat filters, whose bounds default to
the dj op's own min_*/max_* params.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from infuse.operators.common import dj
from infuse.operators.common.base import stable_hash
from infuse.operators.filter.config import AutoBound, FilterOpSpec
from infuse.operators.filter.ops import INFUSE_FILTERS

STAT_PREFIX = "stat_"
_PROBE = "Probe text 123, with two lines.\n第二行中文。"


def _keys_file() -> Path:
    base = os.environ.get("INFUSE_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "infuse") / "dj-stat-keys.json"


def stat_keys(name: str, params: dict[str, Any]) -> list[str]:
    """The stat keys a data-juicer filter writes, from one probe run, remembered on disk per op, params
    and data-juicer version (a probe builds the op, and some ops load a model to run)."""
    from importlib.metadata import version

    path = _keys_file()
    key = stable_hash({"op": name, "params": params, "dj": version("py-data-juicer")})
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    if key in known:
        return list(known[key])
    keys = list(dj.run_stats(dj.make_op(name, params), [_PROBE])[0])
    known[key] = keys
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(known, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: probe again next time
    return keys


@dataclass(frozen=True)
class OutOfBounds:
    """A chunk's stat below its low bound, above its high bound, or not computable (side `failed`)."""

    stat: str
    value: float
    bound: float | None
    side: str  # low | high | failed

    @property
    def reason(self) -> str:
        return "stat_failed" if self.side == "failed" else f"{self.stat}_too_{self.side}"

    def message(self, source: str | None) -> str:
        if self.side == "failed":
            return f"{self.stat} could not be computed"
        return (f"{self.stat}={self.value:.4g} {'<' if self.side == 'low' else '>'} {self.side} bound "
                f"{self.bound:.4g} ({source})")

    def brief(self) -> dict[str, Any]:
        return {"stat": self.stat, "value": self.value, "bound": self.bound, "side": self.side}


class StatOp:
    """Base of the two kinds of stat op; `stat` names it in outputs, `column` is its stat_<name> column."""

    def __init__(self, spec: FilterOpSpec, key: str, low: float | None, high: float | None) -> None:
        self.spec = spec
        self.name = spec.name
        self.gate, self.auto_gated = spec.gate()
        self.auto: AutoBound | None = spec.auto
        self.key, self.low, self.high = key, low, high  # low/high: the fixed bounds (None: auto or none)
        self.stat = spec.column or key
        self.column = STAT_PREFIX + self.stat

    def compute(self, texts: list[str], langs: list[str], context: list[dict]) -> list[float]:
        raise NotImplementedError

    def outside(self, table: pa.Table, bounds: dict[str, Any]) -> dict[int, OutOfBounds]:
        """Row position -> why that chunk's stat is out: NaN (failed), or beyond the fitted low/high bound.
        A null stat (the op does not apply to the chunk) is never out."""
        low, high = bounds.get("low"), bounds.get("high")
        col = table.column(self.column)
        x = col.to_numpy(zero_copy_only=False).astype(np.float64)
        valid = ~np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        failed = valid & np.isnan(x)
        with np.errstate(invalid="ignore"):
            below = valid & ~failed & (x < low) if low is not None else np.zeros(len(x), bool)
            above = valid & ~failed & (x > high) if high is not None else np.zeros(len(x), bool)
        out = {}
        for i in np.flatnonzero(failed | below | above):
            side = "failed" if failed[i] else ("low" if below[i] else "high")
            out[int(i)] = OutOfBounds(self.stat, float(x[i]), {"low": low, "high": high}.get(side), side)
        return out


class InfuseStat(StatOp):
    """One of infuse's own stats (INFUSE_FILTERS): bounds are the spec's min/max or auto."""

    def __init__(self, spec: FilterOpSpec) -> None:
        key, self._fn, _ = INFUSE_FILTERS[spec.name]
        super().__init__(spec, key, spec.min, spec.max)

    def compute(self, texts: list[str], langs: list[str], context: list[dict]) -> list[float]:
        return [float(v) for v in self._fn(texts, langs, self.spec.params)]


class DjStat(StatOp):
    """A data-juicer stat filter. A side's bound: the spec's min/max if set, else the op's own min_*/max_*
    param, else (no bound set at all) the op's default, so a data-juicer recipe behaves as it does in dj."""

    def __init__(self, spec: FilterOpSpec) -> None:
        params = dict(spec.params)
        keys = stat_keys(spec.name, params)
        if spec.stat is not None and spec.stat not in keys:
            raise ValueError(f"{spec.name} makes stats {keys}, not {spec.stat!r}")
        if not keys:
            raise ValueError(f"{spec.name} computes no stat; only stat filters can be used here")
        cls = dj.registry()[spec.name]
        min_p, max_p = dj.bound_params(cls)
        fs = spec.model_fields_set
        ours = bool({"min", "max", "auto"} & fs)
        theirs = (min_p in params) or (max_p in params)
        default = not ours and not theirs
        super().__init__(spec, spec.stat or keys[0], _side(spec.min, "min" in fs, min_p, params, cls, default),
                         _side(spec.max, "max" in fs, max_p, params, cls, default))
        self._params = params
        self._built: Any = None

    @property
    def _op(self) -> Any:
        """The data-juicer op, built on first use: a run whose stats all come from the memo never loads
        its models (the token ratio's tokenizer takes seconds)."""
        if self._built is None:
            self._built = dj.make_op(self.name, self._params)
        return self._built

    def compute(self, texts: list[str], langs: list[str], context: list[dict]) -> list[float]:
        stats = dj.run_stats(self._op, texts, context)
        return [float(s[self.key]) for s in stats]


def _side(ours: float | None, ours_set: bool, param: str | None, params: dict, cls: type,
          use_default: bool) -> float | None:
    if ours_set:
        return ours
    if param and param in params:
        return dj.as_bound(params[param])
    if param and use_default:
        return dj.as_bound(dj.param_default(cls, param))
    return None


def stat_op(spec: FilterOpSpec) -> StatOp:
    return InfuseStat(spec) if spec.name in INFUSE_FILTERS else DjStat(spec)
