"""Paid work kept by what determines it, across runs whose step keys differ.

A step key changes whenever any input changes: one new document changes the
chunks, so synthesize's key, so its shards. LLM work is too costly to redo for
that. An ItemMemo keeps each finished item (a synthesis work item, an
evaluation answer, a preference sample) under a content key the caller
computes from exactly what the item's result depends on: the source text's
hash, the strategy, the prompt and its version, the model and the sampling
settings. A later run, whatever its step key, finds it again.

Layout: `artifacts/cache-<step>/<namespace>/`, units of one table each
(`_memo_key`, `value` JSON, `deps` JSON). Each batch of new entries is
committed as its own unit as soon as it is done (a kill loses nothing
finished); `finish(keys)` rewrites one `memo` unit holding the entries this
run used and drops the rest, so the memo follows the corpus instead of
growing. `--refresh` reads nothing (and the run's `finish` replaces it all).
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from infuse.storage import ArtifactStore

SCHEMA = pa.schema([("_memo_key", pa.string()), ("value", pa.string()), ("deps", pa.string())])


class ItemMemo:
    def __init__(self, store: ArtifactStore, step: str, namespace: str, fresh: bool = False) -> None:
        self.store, self.step, self.namespace = store, f"cache-{step}", namespace
        self._entries: dict[str, tuple[str, str]] = {}  # key -> (value JSON, deps JSON)
        self._units = store.list_units(self.step, namespace)  # dropped by finish(), read unless fresh
        for unit in [] if fresh else self._units:
            refs = store.load_unit(self.step, namespace, unit)
            if refs is None or "entries" not in refs:
                continue
            t = store.read(refs["entries"])
            for k, v, d in zip(*(t.column(c).to_pylist() for c in SCHEMA.names)):
                self._entries[k] = (v, d)
        self.hits = self.misses = 0

    def get(self, key: str) -> tuple[Any, dict[str, str]] | None:
        """(value, deps) of a kept entry, or None. Counts a hit or a miss."""
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        return json.loads(found[0]), json.loads(found[1] or "{}")

    def unhit(self) -> None:
        """The caller found the last hit stale (a dependency changed): count it as a miss."""
        self.hits -= 1
        self.misses += 1

    def put(self, entries: Iterable[tuple[str, Any, dict[str, str] | None]]) -> None:
        """Keep entries (key, value, deps) now: one unit, committed atomically."""
        rows = []
        for key, value, deps in entries:
            v = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
            d = json.dumps(deps or {}, sort_keys=True)
            self._entries[key] = (v, d)
            rows.append({"_memo_key": key, "value": v, "deps": d})
        if rows:
            unit = f"part-{uuid.uuid4().hex[:16]}"
            self.store.commit_unit(self.step, self.namespace, unit,
                                   {"entries": pa.Table.from_pylist(rows, schema=SCHEMA)})
            self._units.append(unit)

    def finish(self, keep: Iterable[str]) -> None:
        """One unit with the entries of `keep` (this run's items), then the earlier units dropped."""
        keep = sorted(set(keep) & set(self._entries))
        rows = [{"_memo_key": k, "value": self._entries[k][0], "deps": self._entries[k][1]} for k in keep]
        self.store.commit_unit(self.step, self.namespace, "memo",
                               {"entries": pa.Table.from_pylist(rows, schema=SCHEMA)})
        for unit in self._units:
            if unit != "memo":
                self.store.drop_unit(self.step, self.namespace, unit)
        self._units = ["memo"]

    def stats(self) -> dict[str, int]:
        return {"memo_hits": self.hits, "memo_misses": self.misses}
