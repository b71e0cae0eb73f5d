"""Cleaner: run the recipe's mappers over a batch of chunks, in order, where each applies."""
from __future__ import annotations

from typing import Any

import pyarrow as pa

from infuse.operators.common import dj
from infuse.operators.common.base import Reject
from infuse.operators.clean.config import CleanConfig, Gate
from infuse.operators.common.lang import detect_lang
from infuse.operators.clean.ops import INFUSE_MAPPERS
from infuse.operators.common.provenance import offset_map

OFFSET_MAP_TYPE = pa.list_(pa.int32())


class _Op:
    def __init__(self, name: str, params: dict[str, Any], gate: Gate) -> None:
        self.name = name
        self.params = params
        self.gate = gate
        if name in INFUSE_MAPPERS:
            fn = INFUSE_MAPPERS[name]
            self.run = lambda texts, kinds: fn(texts, kinds, params)
        else:
            op = dj.make_op(name, params)
            self.run = lambda texts, kinds: dj.run_mapper(op, texts)


def batch_context(table: pa.Table, need_lang: bool = True) -> tuple[list[str | None], list[str | None], list[str]]:
    """(formats, kinds, langs) of a batch; absent columns read as None; langs all 'en' unless need_lang."""
    n = table.num_rows
    cols = table.column_names
    fmts = table.column("format").to_pylist() if "format" in cols else [None] * n
    kinds = table.column("kind").to_pylist() if "kind" in cols else [None] * n
    if not need_lang:
        return fmts, kinds, ["en"] * n
    langs = [detect_lang(t) for t in table.column("text").to_pylist()]
    return fmts, kinds, langs


class Cleaner:
    """Applies CleanConfig.ops to the `text` column and records in `offset_map` how each changed text
    lines up with its original (operators.common.provenance); keeps every other column as is."""

    def __init__(self, cfg: CleanConfig | None = None) -> None:
        self.cfg = cfg or CleanConfig.default()
        self.ops: list[_Op] = []
        self.notes: list[str] = []
        for spec in self.cfg.ops:
            gate, auto = spec.gate()
            if auto:
                self.notes.append(f"{spec.name}: applied only where {gate.model_dump(exclude_none=True)} (auto gate)")
            self.ops.append(_Op(spec.name, spec.params, gate))
        self._need_lang = any(op.gate.only_lang is not None for op in self.ops)

    def process_batch(self, table: pa.Table) -> tuple[pa.Table, list[Reject]]:
        """Clean one batch. Rows whose text ends up blank, or that an op fails on, are rejects."""
        if table.num_rows == 0:
            return table, []
        batch = _Batch(table, self._need_lang)
        for op in self.ops:
            rows = batch.rows_for(op)
            if rows:
                batch.update(op, rows, self._run(op, [batch.texts[i] for i in rows], [batch.kinds[i] for i in rows],
                                                 [batch.ids[i] for i in rows]))
        return batch.cleaned(table), [batch.rejects[i] for i in sorted(batch.rejects)]

    @staticmethod
    def _run(op: _Op, texts: list[str], kinds: list[str | None], ids: list[str]) -> list[Any]:
        """Run a batch; if it raises, retry row by row so one bad row cannot sink the batch."""
        try:
            return op.run(texts, kinds)
        except dj.DjAssetError:
            raise
        except Exception:
            pass
        out: list[Any] = []
        for t, k, cid in zip(texts, kinds, ids):
            try:
                out.append(op.run([t], [k])[0])
            except dj.DjAssetError:
                raise
            except Exception as e:  # noqa: BLE001 - a row failure becomes a reject
                out.append(Reject(cid, "clean_failed", f"{op.name}: {type(e).__name__}: {e}", {"op": op.name}))
        return out


class _Batch:
    """A batch being cleaned: its texts as the ops leave them, and the rows rejected so far."""

    def __init__(self, table: pa.Table, need_lang: bool) -> None:
        self.ids = table.column("chunk_id").to_pylist()
        self.texts: list[str] = [t or "" for t in table.column("text").to_pylist()]
        self.fmts, self.kinds, self.langs = batch_context(table, need_lang)
        self.rejects: dict[int, Reject] = {
            i: Reject(self.ids[i], "emptied_by_clean", "chunk text is empty before clean", {"op": None})
            for i, t in enumerate(self.texts) if not t.strip()}

    def rows_for(self, op: _Op) -> list[int]:
        """The rows still in the batch where the op applies."""
        return [i for i in range(len(self.texts))
                if i not in self.rejects and op.gate.applies(self.fmts[i], self.kinds[i], self.langs[i])]

    def update(self, op: _Op, rows: list[int], values: list[Any]) -> None:
        """The op's output for those rows: a new text, or a reject; a text left blank is a reject too."""
        for i, value in zip(rows, values):
            if isinstance(value, Reject):
                self.rejects[i] = value
                continue
            self.texts[i] = value
            if not value.strip():
                self.rejects[i] = Reject(self.ids[i], "emptied_by_clean", f"{op.name} left no text", {"op": op.name})

    def cleaned(self, table: pa.Table) -> pa.Table:
        """The kept rows with their cleaned text and an offset_map back to the original text."""
        keep = [i for i in range(len(self.texts)) if i not in self.rejects]
        out = table.take(pa.array(keep, type=pa.int64())) if len(keep) < len(self.texts) else table
        idx = out.schema.get_field_index("text")
        out = out.set_column(idx, out.schema.field(idx),
                             pa.array([self.texts[i] for i in keep], type=out.schema.field(idx).type))
        originals = table.column("text").to_pylist()
        maps = pa.array([offset_map(originals[i] or "", self.texts[i]) for i in keep], OFFSET_MAP_TYPE)
        if "offset_map" in out.column_names:
            return out.set_column(out.column_names.index("offset_map"), pa.field("offset_map", OFFSET_MAP_TYPE), maps)
        return out.append_column(pa.field("offset_map", OFFSET_MAP_TYPE), maps)
