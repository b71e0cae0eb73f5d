"""QualityFilter: per-chunk stats from data-juicer filters, corpus-fitted bounds, and rejects.

Three passes so the step can stream: `stats_batch` on every batch (stats
are kept as `stat_<name>` columns, to inspect and re-threshold without
recomputing), `fit` once on the stat columns alone, then `apply_batch`.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from infuse.operators.common import dj
from infuse.operators.common.base import Reject, stable_hash
from infuse.operators.clean.cleaner import batch_context
from infuse.operators.filter.bounds import fit_stat
from infuse.operators.filter.config import AutoBound, FilterConfig, FilterOpSpec
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


class _StatOp:
    """One stat op, resolved: what it computes, where, and its fixed bounds."""

    def __init__(self, spec: FilterOpSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.gate, self.auto_gated = spec.gate()
        self.auto: AutoBound | None = spec.auto
        params = dict(spec.params)
        fs = spec.model_fields_set
        if spec.name in INFUSE_FILTERS:
            key, fn, _ = INFUSE_FILTERS[spec.name]
            self.key = key
            self._infuse = fn
            self._params, self._built = params, None
            self.low = spec.min
            self.high = spec.max
        else:
            self._infuse = None
            self._params = params
            self._built: Any = None
            keys = stat_keys(spec.name, params)
            if spec.stat is not None and spec.stat not in keys:
                raise ValueError(f"{spec.name} makes stats {keys}, not {spec.stat!r}")
            if not keys:
                raise ValueError(f"{spec.name} computes no stat; only stat filters can be used here")
            self.key = spec.stat or keys[0]
            cls = dj.registry()[spec.name]
            min_p, max_p = dj.bound_params(cls)
            ours = bool({"min", "max", "auto"} & fs)
            theirs = (min_p in params) or (max_p in params)
            self.low = self._side(spec.min, "min" in fs, min_p, params, cls, use_default=not ours and not theirs)
            self.high = self._side(spec.max, "max" in fs, max_p, params, cls, use_default=not ours and not theirs)
        self.stat = spec.column or self.key
        self.column = STAT_PREFIX + self.stat

    @staticmethod
    def _side(ours: float | None, ours_set: bool, param: str | None, params: dict, cls: type,
              use_default: bool) -> float | None:
        if ours_set:
            return ours
        if param and param in params:
            return dj.as_bound(params[param])
        if param and use_default:
            return dj.as_bound(dj.param_default(cls, param))
        return None

    @property
    def _op(self) -> Any:
        """The data-juicer op, built on first use: a run whose stats all come from the memo never loads
        its models (the token ratio's tokenizer takes seconds)."""
        if self._built is None:
            self._built = dj.make_op(self.name, self._params)
        return self._built

    def compute(self, texts: list[str], langs: list[str], context: list[dict]) -> list[float]:
        if self._infuse is not None:
            return [float(v) for v in self._infuse(texts, langs, self.spec.params)]
        stats = dj.run_stats(self._op, texts, context)
        return [float(s[self.key]) for s in stats]


class QualityFilter:
    def __init__(self, cfg: FilterConfig | None = None) -> None:
        self.cfg = cfg or FilterConfig.default()
        self.ops = [_StatOp(s) for s in self.cfg.ops]
        seen: dict[str, str] = {}
        for op in self.ops:
            if op.stat in seen:
                raise ValueError(
                    f"stat {op.stat!r} is made by both {seen[op.stat]} and {op.name}; give one a `column` name"
                )
            seen[op.stat] = op.name
        self._need_lang = any(op.gate.only_lang is not None or op.name in INFUSE_FILTERS for op in self.ops)
        self.notes = [
            f"{op.name}: computed only where {op.gate.model_dump(exclude_none=True)} (auto gate)"
            for op in self.ops if op.auto_gated
        ]

    @property
    def stat_columns(self) -> list[str]:
        return [op.column for op in self.ops]

    # -- pass 1 ------------------------------------------------------------

    def stats_batch(self, table: pa.Table) -> pa.Table:
        """The batch plus one float64 column per stat: null where the op does not apply, NaN where it failed."""
        n = table.num_rows
        texts = [t or "" for t in table.column("text").to_pylist()]
        fmts, kinds, langs = batch_context(table, self._need_lang)
        context: list[dict] = [{} for _ in range(n)]
        out = table
        for op in self.ops:
            values: list[float | None] = [None] * n
            rows = [i for i in range(n) if op.gate.applies(fmts[i], kinds[i], langs[i])]
            if rows:
                res = self._run(op, [texts[i] for i in rows], [langs[i] for i in rows], [context[i] for i in rows])
                for i, v in zip(rows, res):
                    values[i] = v
            arr = pa.array(values, type=pa.float64())
            if op.column in out.column_names:
                out = out.set_column(out.column_names.index(op.column), op.column, arr)
            else:
                out = out.append_column(op.column, arr)
        return out

    @staticmethod
    def _run(op: _StatOp, texts: list[str], langs: list[str], context: list[dict]) -> list[float]:
        try:
            return op.compute(texts, langs, context)
        except dj.DjAssetError:
            raise
        except Exception:
            pass
        out = []
        for t, lang in zip(texts, langs):
            try:
                out.append(op.compute([t], [lang], [{}])[0])
            except dj.DjAssetError:
                raise
            except Exception:  # noqa: BLE001 - recorded as NaN, rejected as stat_failed
                out.append(math.nan)
        return out

    # -- pass 2 ------------------------------------------------------------

    def fit(self, stats: pa.Table | pa.RecordBatch | Iterable[pa.Table | pa.RecordBatch]) -> dict[str, dict[str, Any]]:
        """Bounds per stat from the stat columns (a table, or an iterable of batches/tables).

        Returns {stat: {low, high, low_source, high_source, source, n, mean, std, median, auto: {...}, ...}}.
        """
        parts: dict[str, list[np.ndarray]] = {op.column: [] for op in self.ops}
        batches = [stats] if isinstance(stats, (pa.Table, pa.RecordBatch)) else stats
        for b in batches:
            for col in parts:
                if col not in b.column_names:
                    raise KeyError(f"stat column {col!r} missing; run stats_batch first")
                parts[col].append(b.column(col).to_numpy(zero_copy_only=False).astype(np.float64))
        bounds: dict[str, dict[str, Any]] = {}
        for op in self.ops:
            values = np.concatenate(parts[op.column]) if parts[op.column] else np.zeros(0)
            b = fit_stat(values, op.low, op.high, op.auto)
            b.update(op=op.name, column=op.column, params=dict(op.spec.params))
            bounds[op.stat] = b
        return bounds

    # -- pass 3 ------------------------------------------------------------

    def apply_batch(self, table: pa.Table, bounds: dict[str, dict[str, Any]]) -> tuple[pa.Table, list[Reject]]:
        """Keep rows within every bound. A reject names the first stat out of range (in recipe order)."""
        n = table.num_rows
        ids = table.column("chunk_id").to_pylist()
        failures: list[list[tuple[str, float, float | None, str]]] = [[] for _ in range(n)]
        for op in self.ops:
            b = bounds.get(op.stat, {})
            low, high = b.get("low"), b.get("high")
            col = table.column(op.column)
            x = col.to_numpy(zero_copy_only=False).astype(np.float64)
            valid = ~np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
            bad_nan = valid & np.isnan(x)
            with np.errstate(invalid="ignore"):
                bad_low = valid & ~bad_nan & (x < low) if low is not None else np.zeros(n, bool)
                bad_high = valid & ~bad_nan & (x > high) if high is not None else np.zeros(n, bool)
            for i in np.flatnonzero(bad_nan | bad_low | bad_high):
                side = "failed" if bad_nan[i] else ("low" if bad_low[i] else "high")
                bound = None if side == "failed" else (low if side == "low" else high)
                failures[i].append((op.stat, float(x[i]), bound, side))
        keep, rejects = [], []
        for i, f in enumerate(failures):
            if not f:
                keep.append(i)
                continue
            stat, value, bound, side = f[0]
            src = bounds.get(stat, {}).get(f"{side}_source")
            if side == "failed":
                reason, msg = "stat_failed", f"{stat} could not be computed"
            else:
                reason = f"{stat}_too_{side}"
                msg = f"{stat}={value:.4g} {'<' if side == 'low' else '>'} {side} bound {bound:.4g} ({src})"
            detail = {"stat": stat, "value": value, "bound": bound, "side": side, "source": src,
                      "also": [{"stat": s, "value": v, "bound": bd, "side": sd} for s, v, bd, sd in f[1:]]}
            rejects.append(Reject(ids[i], reason, msg, detail))
        out = table if len(keep) == n else table.take(pa.array(keep, type=pa.int64()))
        return out, rejects

    # -- plots -------------------------------------------------------------

    def plots(self, stats: pa.Table | Iterable[pa.Table | pa.RecordBatch], bounds: dict[str, dict[str, Any]],
              bins: int = 60) -> dict[str, bytes]:
        """One histogram PNG per stat with its low/high bounds drawn."""
        from infuse.operators.filter.plots import histogram_png

        batches = [stats] if isinstance(stats, (pa.Table, pa.RecordBatch)) else list(stats)
        out = {}
        for op in self.ops:
            x = np.concatenate([b.column(op.column).to_numpy(zero_copy_only=False).astype(np.float64)
                                for b in batches]) if batches else np.zeros(0)
            b = bounds.get(op.stat, {})
            log = bool(op.auto and op.auto.scale == "log")
            out[op.stat] = histogram_png(op.stat, x, b.get("low"), b.get("high"), log=log, bins=bins,
                                         sources=(b.get("low_source"), b.get("high_source")))
        return out

