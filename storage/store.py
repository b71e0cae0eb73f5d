"""Content-hashed Parquet artifacts under a root that is a local path or an fsspec URL.

Layout under the root:
  artifacts/<step>/<key>/<name>.parquet        the data
  artifacts/<step>/<key>/<name>.meta.json      written LAST: sha256, rows, schema

An artifact counts as complete only when its meta file exists. Data is written
to a temporary name and renamed into place before the meta file is written, so
a killed write leaves at worst an orphan temp file that nothing trusts.
"""
from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

REJECTS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("step", pa.string()),
        ("reason", pa.string()),
        ("message", pa.string()),
        ("detail", pa.string()),  # JSON object
    ]
)


@dataclass(frozen=True)
class ArtifactRef:
    """A pointer to a committed artifact; what tasks pass to each other."""

    step: str
    name: str
    key: str
    path: str  # full URL/path of the parquet file
    sha256: str
    rows: int
    schema: str  # pyarrow schema as text, for `infuse show`

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArtifactRef":
        return cls(**d)


class _HashingFile:
    """A write-only file wrapper that hashes the bytes going through it."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()

    def write(self, data: Any) -> int:
        mv = memoryview(data)
        self.sha.update(mv)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:
        self.raw.close()

    def tell(self) -> int:
        return self.raw.tell()

    @property
    def closed(self) -> bool:
        return self.raw.closed


class ArtifactWriter:
    """Streams record batches into one Parquet artifact and commits it atomically.

    Use as a context manager; an exception inside the block discards the temp file.
    """

    def __init__(self, store: "ArtifactStore", step: str, key: str, name: str, schema: pa.Schema | None,
                 row_group_size: int = 50_000, fallback_schema: pa.Schema | None = None) -> None:
        """`schema=None` takes the schema of the first batch written (for steps that add
        stat columns); `fallback_schema` is used if nothing is written at all."""
        self.store, self.step, self.key, self.name, self.schema = store, step, key, name, schema
        self.fallback_schema = fallback_schema
        self.row_group_size = row_group_size
        self.final = store.artifact_path(step, key, name)
        self.tmp = f"{self.final}.tmp-{uuid.uuid4().hex}"
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._file: _HashingFile | None = None
        store.fs.makedirs(store.fs._parent(self.final), exist_ok=True)
        if schema is not None:
            self._open(schema)

    def _open(self, schema: pa.Schema) -> None:
        self.schema = schema
        self._file = _HashingFile(self.store.fs.open(self.tmp, "wb"))
        self._writer = pq.ParquetWriter(self._file, schema, compression="zstd")

    def write(self, data: pa.Table | pa.RecordBatch | list[dict[str, Any]]) -> None:
        if isinstance(data, list):
            data = pa.Table.from_pylist(data, schema=self.schema or self.fallback_schema)
        elif isinstance(data, pa.RecordBatch):
            data = pa.Table.from_batches([data])
        if data.num_rows == 0:
            return
        if self._writer is None:
            self._open(data.schema)
        data = data.select(self.schema.names).cast(self.schema)
        self._writer.write_table(data, row_group_size=self.row_group_size)
        self.rows += data.num_rows

    def commit(self, extra: dict[str, Any] | None = None) -> ArtifactRef:
        if self._writer is None:
            if self.fallback_schema is None:
                raise ValueError(f"{self.step}/{self.name}: nothing written and no fallback schema")
            self._open(self.fallback_schema)
        assert self._writer is not None and self._file is not None
        self._writer.close()
        self._file.close()
        sha = self._file.sha.hexdigest()
        self.store._rename(self.tmp, self.final)
        ref = ArtifactRef(self.step, self.name, self.key, self.final, sha, self.rows, self.schema.to_string())
        meta = {**ref.to_dict(), "committed_at": time.time(), **(extra or {})}
        self.store._write_text_atomic(self.store.meta_path(self.step, self.key, self.name),
                                      json.dumps(meta, ensure_ascii=False, indent=1))
        return ref

    def abort(self) -> None:
        try:
            if self._writer is not None and self._file is not None:
                self._writer.close()
                self._file.close()
        finally:
            if self.store.fs.exists(self.tmp):
                self.store.fs.rm(self.tmp)

    def __enter__(self) -> "ArtifactWriter":
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is not None:
            self.abort()


class ArtifactStore:
    """Parquet artifacts, run manifests and per-item caches under one root."""

    def __init__(self, root: str) -> None:
        self.root = str(root).rstrip("/")
        self.fs, self._base = fsspec.core.url_to_fs(self.root)
        self.fs.makedirs(self._base, exist_ok=True)
        self._protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]

    # ---- paths -----------------------------------------------------------
    def url(self, *parts: str) -> str:
        return "/".join([self._base, *parts])

    def artifact_path(self, step: str, key: str, name: str) -> str:
        return self.url("artifacts", step, key, f"{name}.parquet")

    def meta_path(self, step: str, key: str, name: str) -> str:
        return self.url("artifacts", step, key, f"{name}.meta.json")

    def display(self, path: str) -> str:
        """A path a user can paste: plain for local files, protocol://path otherwise."""
        return path if self._protocol in ("file", "local") else f"{self._protocol}://{path}"

    # ---- writing ---------------------------------------------------------
    def writer(self, step: str, key: str, name: str, schema: pa.Schema | None, **kw: Any) -> ArtifactWriter:
        return ArtifactWriter(self, step, key, name, schema, **kw)

    def write_table(self, step: str, key: str, name: str, table: pa.Table | list[dict[str, Any]],
                    schema: pa.Schema | None = None, extra: dict[str, Any] | None = None) -> ArtifactRef:
        if isinstance(table, list):
            table = pa.Table.from_pylist(table, schema=schema)
        with self.writer(step, key, name, schema or table.schema) as w:
            w.write(table)
            return w.commit(extra)

    def write_rejects(self, step: str, key: str, rows: list[dict[str, Any]]) -> ArtifactRef:
        return self.write_table(step, key, "rejects", pa.Table.from_pylist(rows, schema=REJECTS_SCHEMA))

    def _rename(self, src: str, dst: str) -> None:
        if self._protocol in ("file", "local"):
            import os

            os.replace(src, dst)  # atomic on POSIX
        else:  # object stores: copy-then-delete; the meta file is the commit point
            self.fs.mv(src, dst)

    def _write_text_atomic(self, path: str, text: str) -> None:
        self.fs.makedirs(self.fs._parent(path), exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        with self.fs.open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        self._rename(tmp, path)

    def write_bytes(self, relpath: str, data: bytes) -> str:
        """A small side file (a plot, say), written atomically."""
        path = self.url(relpath)
        self.fs.makedirs(self.fs._parent(path), exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        with self.fs.open(tmp, "wb") as f:
            f.write(data)
        self._rename(tmp, path)
        return path

    def write_json(self, relpath: str, obj: Any) -> str:
        path = self.url(relpath)
        self._write_text_atomic(path, json.dumps(obj, ensure_ascii=False, indent=1, default=str))
        return path

    def read_json(self, relpath: str) -> Any:
        path = self.url(relpath)
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "r", encoding="utf-8") as f:
            return json.load(f)

    # ---- reading ---------------------------------------------------------
    def committed(self, step: str, key: str, name: str) -> ArtifactRef | None:
        """The artifact if it was committed and its data file is still there."""
        meta = self.meta_path(step, key, name)
        if not self.fs.exists(meta):
            return None
        with self.fs.open(meta, "r", encoding="utf-8") as f:
            d = json.load(f)
        # the data file beside the meta, under THIS root (a copied or moved root reads its own files)
        path = self.artifact_path(step, key, name)
        if not self.fs.exists(path):
            return None
        return ArtifactRef.from_dict({**{k: d[k] for k in ArtifactRef.__dataclass_fields__}, "path": path})

    def read_meta(self, step: str, key: str, name: str) -> dict[str, Any] | None:
        meta = self.meta_path(step, key, name)
        if not self.fs.exists(meta):
            return None
        with self.fs.open(meta, "r", encoding="utf-8") as f:
            return json.load(f)

    def invalidate(self, step: str, key: str, keep_prefix: str = "shard-") -> None:
        """Un-commit a step's outputs before recomputing them, so a killed recompute leaves
        nothing that looks complete. Artifacts named keep_prefix* (resumable shards) stay."""
        for meta in self.fs.glob(self.url("artifacts", step, key, "*.meta.json")):
            if not meta.rsplit("/", 1)[-1].startswith(keep_prefix):
                self.fs.rm(meta)

    def exists(self, ref: ArtifactRef | dict[str, Any]) -> bool:
        if isinstance(ref, dict):
            ref = ArtifactRef.from_dict(ref)
        return self.committed(ref.step, ref.key, ref.name) is not None

    def read(self, ref: ArtifactRef, columns: list[str] | None = None) -> pa.Table:
        with self.fs.open(ref.path, "rb") as f:
            return pq.read_table(f, columns=columns)

    def schema(self, ref: ArtifactRef) -> pa.Schema:
        """The artifact's schema, from the Parquet footer only."""
        with self.fs.open(ref.path, "rb") as f:
            return pq.read_schema(f)

    def iter_batches(self, ref: ArtifactRef, batch_size: int = 10_000,
                     columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        """Stream an artifact without loading it whole."""
        with self.fs.open(ref.path, "rb") as f:
            pf = pq.ParquetFile(f)
            yield from pf.iter_batches(batch_size=batch_size, columns=columns)

    def verify(self, ref: ArtifactRef) -> bool:
        """Recompute the sha256 of the data file and compare it with the recorded one."""
        sha = hashlib.sha256()
        with self.fs.open(ref.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                sha.update(block)
        return sha.hexdigest() == ref.sha256

    def list_artifacts(self, step: str | None = None) -> list[dict[str, Any]]:
        pattern = self.url("artifacts", step or "*", "*", "*.meta.json")
        out = []
        for p in self.fs.glob(pattern):
            with self.fs.open(p, "r", encoding="utf-8") as f:
                out.append(json.load(f))
        return sorted(out, key=lambda d: d.get("committed_at", 0))
