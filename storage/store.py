"""Content-hashed artifacts under a root that is a local path or an fsspec URL.

Layout under the root:
  artifacts/<step>/<key>/<name>.parquet        a table
  artifacts/<step>/<key>/<name>/               a directory artifact: a model or a report
  artifacts/<step>/<key>/<name>.meta.json      written LAST: sha256, rows, schema (per-file sha256 for a dir)
  artifacts/<step>/<key>/<unit>.unit.json      a unit: tables that commit together (a shard's qa + status)
  artifacts/<step>/<key>/_step.json            the step's commit point: every output + rejects + report
  artifacts/<step>/<key>/_work/                scratch that survives a kill (checkpoints), never trusted as output

An artifact counts as complete only when its meta file exists. Data is written
to a temporary name and renamed into place before the meta file is written, so
a killed write leaves at worst an orphan temp file that nothing trusts; the
next start of that step removes it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
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
    path: str  # full URL/path of the parquet file, or of the directory
    sha256: str  # of the file; of the sorted (file, sha256) list for a directory
    rows: int  # rows of a table; files of a directory
    schema: str  # pyarrow schema as text, for `infuse show`; what a directory holds
    kind: str = "table"  # table | model | report

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArtifactRef":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    @property
    def is_dir(self) -> bool:
        return self.kind != "table"


_UNIT_MEMBER = re.compile(r"(.+\.[0-9a-f]{12})\.parquet")


def _leftover(fname: str, unit_tables: set[str]) -> bool:
    """A file of a key folder that nothing trusts: a killed write's temp file, or a unit's table that no
    committed unit names."""
    member = _UNIT_MEMBER.fullmatch(fname)
    return ".tmp-" in fname or bool(member and member.group(1) not in unit_tables)


def _local_cache() -> Path:
    base = os.environ.get("INFUSE_CACHE")
    return Path(base) if base else Path.home() / ".cache" / "infuse"


def _sha256_stream(f: Any) -> str:
    """sha256 of a binary file object's bytes, read in 1 MiB blocks (a model file need not fit in memory)."""
    digest = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return _sha256_stream(f)


def dir_manifest(root: Path) -> dict[str, dict[str, Any]]:
    """Every file under a local directory: relative path -> sha256 and size."""
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        out[path.relative_to(root).as_posix()] = {"sha256": _sha256_file(path), "size": path.stat().st_size}
    return out


def dir_sha(files: dict[str, dict[str, Any]]) -> str:
    blob = json.dumps([[k, v["sha256"]] for k, v in sorted(files.items())]).encode()
    return hashlib.sha256(blob).hexdigest()


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


@dataclass
class DirOutput:
    """A directory artifact being written: fill `path`; `ref` is set once it is committed."""

    path: Path
    ref: ArtifactRef | None = None
    describe: str = ""  # a line for `infuse show` (e.g. "lora adapter of gemma3-270m"), settable while writing


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
        self._buffer: list[pa.Table] = []
        self._buffered = 0
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
        # buffered to whole row groups: the file's bytes do not depend on how the rows were batched
        self._buffer.append(data)
        self._buffered += data.num_rows
        self.rows += data.num_rows
        if self._buffered >= self.row_group_size:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        if not self._buffer:
            return
        table = pa.concat_tables(self._buffer)
        cut = table.num_rows if final else table.num_rows - table.num_rows % self.row_group_size
        if cut:
            self._writer.write_table(table.slice(0, cut), row_group_size=self.row_group_size)
        rest = table.slice(cut)
        self._buffer, self._buffered = ([rest] if rest.num_rows else []), rest.num_rows

    def commit_file(self) -> ArtifactRef:
        """Close and rename the data file into place, without a meta (a unit's member)."""
        if self._writer is None:
            if self.fallback_schema is None:
                raise ValueError(f"{self.step}/{self.name}: nothing written and no fallback schema")
            self._open(self.fallback_schema)
        assert self._writer is not None and self._file is not None
        self._flush(final=True)
        self._writer.close()
        self._file.close()
        sha = self._file.sha.hexdigest()
        self.store._rename(self.tmp, self.final)
        return ArtifactRef(self.step, self.name, self.key, self.final, sha, self.rows, self.schema.to_string())

    def commit(self, extra: dict[str, Any] | None = None) -> ArtifactRef:
        """Rename the data into place, then write the meta: the artifact's commit point."""
        ref = self.commit_file()
        self.store._write_meta(ref, extra)
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
        # an object store's listings are not cached: other processes (cluster workers, other runs) write there
        remote = "://" in self.root and not self.root.startswith("file://")
        self.fs, self._base = fsspec.core.url_to_fs(self.root, **({"use_listings_cache": False} if remote else {}))
        self.fs.makedirs(self._base, exist_ok=True)
        self._protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]

    # ---- paths -----------------------------------------------------------
    def url(self, *parts: str) -> str:
        return "/".join([self._base, *parts])

    def artifact_path(self, step: str, key: str, name: str) -> str:
        return self.url("artifacts", step, key, f"{name}.parquet")

    def meta_path(self, step: str, key: str, name: str) -> str:
        return self.url("artifacts", step, key, f"{name}.meta.json")

    def dir_path(self, step: str, key: str, name: str) -> str:
        return self.url("artifacts", step, key, name)

    def key_dir(self, step: str, key: str) -> str:
        return self.url("artifacts", step, key)

    @property
    def is_local(self) -> bool:
        return self._protocol in ("file", "local")

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
            os.replace(src, dst)  # atomic on POSIX
        else:  # object stores: copy-then-delete; the meta file is the commit point
            self.fs.mv(src, dst)

    def _write_text_atomic(self, path: str, text: str) -> None:
        self.fs.makedirs(self.fs._parent(path), exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        with self.fs.open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        self._rename(tmp, path)

    def write_json(self, relpath: str, obj: Any) -> str:
        path = self.url(relpath)
        self._write_text_atomic(path, json.dumps(obj, ensure_ascii=False, indent=1, default=str))
        return path

    def read_json(self, relpath: str) -> Any:
        """A JSON file under the root (`manifests/<run>.json`), or None when it is not there."""
        return self._load_json(self.url(relpath))

    def _load_json(self, path: str) -> Any:
        """The JSON file at a full path, or None when it is not there (never committed, or removed)."""
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "r", encoding="utf-8") as f:
            return json.load(f)

    @contextmanager
    def dir_writer(self, step: str, key: str, name: str, kind: str = "model",
                   describe: str = "") -> Iterator["DirOutput"]:
        """A local directory to fill; on a clean exit it is committed as one artifact.

        Local root: the directory is written under a hidden temp name beside its
        final place and renamed into place. Remote root: it is written to a
        local temp dir and uploaded. Either way the meta, with every file's
        sha256, is written last, so a killed write never looks complete.
        """
        final = self.dir_path(step, key, name)
        if self.is_local:
            self.fs.makedirs(self.key_dir(step, key), exist_ok=True)
            tmp = Path(f"{self.key_dir(step, key)}/.{name}.tmp-{uuid.uuid4().hex}")
            tmp.mkdir(parents=True)
        else:
            tmp = Path(tempfile.mkdtemp(prefix=f"infuse-{name}-"))
        out = DirOutput(tmp)
        try:
            yield out
            files = dir_manifest(tmp)
            self.uncommit(step, key, name)
            if self.is_local:
                if os.path.isdir(final):
                    shutil.rmtree(final)
                os.replace(tmp, final)
            else:
                if self.fs.exists(final):
                    self.fs.rm(final, recursive=True)
                self.fs.put(str(tmp), final, recursive=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if not self.is_local:
            shutil.rmtree(tmp, ignore_errors=True)
        out.ref = ArtifactRef(step, name, key, final, dir_sha(files), len(files), out.describe or describe or kind,
                              kind)
        self._write_meta(out.ref, {"files": files})

    def write_dir(self, step: str, key: str, name: str, files: dict[str, bytes], kind: str = "report",
                  describe: str = "") -> ArtifactRef:
        """A small directory artifact (a report: markdown, JSON, PNG) from in-memory files."""
        with self.dir_writer(step, key, name, kind, describe) as out:
            for rel, data in files.items():
                (out.path / rel).parent.mkdir(parents=True, exist_ok=True)
                (out.path / rel).write_bytes(data)
        assert out.ref is not None
        return out.ref

    def _write_meta(self, ref: ArtifactRef, extra: dict[str, Any] | None = None) -> None:
        meta = {**ref.to_dict(), "committed_at": time.time(), **(extra or {})}
        self._write_text_atomic(self.meta_path(ref.step, ref.key, ref.name),
                                json.dumps(meta, ensure_ascii=False, indent=1))

    def uncommit(self, step: str, key: str, name: str) -> None:
        """Remove an artifact's meta (its commit point): from here on it is not trusted."""
        meta = self.meta_path(step, key, name)
        if self.fs.exists(meta):
            self.fs.rm(meta)

    # ---- units: tables that commit together --------------------------------
    def unit_path(self, step: str, key: str, unit: str) -> str:
        return self.url("artifacts", step, key, f"{unit}.unit.json")

    def commit_unit(self, step: str, key: str, unit: str, tables: dict[str, pa.Table]) -> dict[str, ArtifactRef]:
        """Write tables that belong together and commit them in one atomic step.

        Each table goes to a fresh file; the unit file, renamed into place last,
        names them all. A kill before that rename leaves the previous version of
        the unit whole (its files are untouched), never half old and half new.
        """
        old = self._read_unit_doc(step, key, unit)
        refs = {}
        for name, table in tables.items():
            fname = f"{unit}.{name}.{uuid.uuid4().hex[:12]}"
            with self.writer(step, key, fname, table.schema) as w:
                w.write(table)
                refs[name] = w.commit_file()
        doc = {"unit": unit, "committed_at": time.time(), "tables": {n: r.to_dict() for n, r in refs.items()}}
        self._write_text_atomic(self.unit_path(step, key, unit), json.dumps(doc, ensure_ascii=False, indent=1))
        for ref in (old or {}).get("tables", {}).values():  # the replaced version's files
            path = self.artifact_path(step, key, ArtifactRef.from_dict(ref).name)
            if self.fs.exists(path):
                self.fs.rm(path)
        return refs

    def _read_unit_doc(self, step: str, key: str, unit: str) -> dict[str, Any] | None:
        return self._load_json(self.unit_path(step, key, unit))

    def load_unit(self, step: str, key: str, unit: str) -> dict[str, ArtifactRef] | None:
        """A committed unit's tables, or None when it was never committed or a file is gone."""
        doc = self._read_unit_doc(step, key, unit)
        if doc is None:
            return None
        refs = {}
        for name, d in doc["tables"].items():
            ref = ArtifactRef.from_dict(d)
            path = self.artifact_path(step, key, ref.name)
            if not self.fs.exists(path):
                return None
            refs[name] = ArtifactRef.from_dict({**ref.to_dict(), "path": path})
        return refs

    def list_units(self, step: str, key: str) -> list[str]:
        """The names of the committed units under a step's key (sorted)."""
        base = self.key_dir(step, key)
        if not self.fs.exists(base):
            return []
        return sorted(p.rsplit("/", 1)[-1][: -len(".unit.json")] for p in self.fs.glob(f"{base}/*.unit.json"))

    def drop_unit(self, step: str, key: str, unit: str) -> None:
        """Remove a unit: its commit file first (from then on it is gone), then its tables."""
        doc = self._read_unit_doc(step, key, unit)
        if doc is None:
            return
        self.fs.rm(self.unit_path(step, key, unit))
        for ref in doc.get("tables", {}).values():
            path = self.artifact_path(step, key, ArtifactRef.from_dict(ref).name)
            if self.fs.exists(path):
                self.fs.rm(path)

    # ---- the step's commit point -------------------------------------------
    def step_record_path(self, step: str, key: str) -> str:
        return self.url("artifacts", step, key, "_step.json")

    def commit_step(self, step: str, key: str, refs: dict[str, ArtifactRef]) -> None:
        """Commit a step's outputs as one unit: the record naming them all is written last."""
        doc = {"step": step, "key": key, "committed_at": time.time(),
               "artifacts": {n: r.to_dict() for n, r in refs.items()}}
        self._write_text_atomic(self.step_record_path(step, key), json.dumps(doc, ensure_ascii=False, indent=1,
                                                                             default=str))

    def step_committed(self, step: str, key: str) -> dict[str, ArtifactRef] | None:
        """Every artifact of a committed step, or None when the step's unit is not whole
        (no record, or an artifact it names is gone or was rewritten since)."""
        doc = self._load_json(self.step_record_path(step, key))
        if doc is None:
            return None
        out = {}
        for name, d in doc["artifacts"].items():
            ref = self.committed(step, key, name)
            if ref is None or ref.sha256 != d["sha256"]:
                return None
            out[name] = ref
        return out

    # ---- reading ---------------------------------------------------------
    def committed(self, step: str, key: str, name: str) -> ArtifactRef | None:
        """The artifact if it was committed and its data is still there."""
        d = self.read_meta(step, key, name)
        if d is None:
            return None
        kind = d.get("kind", "table")
        # the data beside the meta, under THIS root (a copied or moved root reads its own files)
        path = self.artifact_path(step, key, name) if kind == "table" else self.dir_path(step, key, name)
        if kind == "table":
            if not self.fs.exists(path):
                return None
        elif not self._dir_intact(path, d.get("files", {})):
            return None
        return ArtifactRef.from_dict({**d, "path": path})

    def _dir_intact(self, path: str, files: dict[str, dict[str, Any]]) -> bool:
        """Every file the meta lists is there with its size (sha256 is checked by `verify`)."""
        if not self.fs.isdir(path):
            return False
        found = {}
        for p, info in self.fs.find(path, detail=True).items():
            found[p[len(path.rstrip("/")) + 1:]] = info.get("size")
        return all(found.get(rel) == f["size"] for rel, f in files.items())

    def local_dir(self, ref: ArtifactRef) -> Path:
        """A directory artifact as a local path: itself on a local root, else a verified local copy."""
        if self.is_local:
            return Path(ref.path)
        cache = _local_cache() / "artifacts" / ref.sha256
        done = cache.with_name(f"{ref.sha256}.complete")  # beside it: the copy holds the artifact's files only
        if done.exists() and cache.is_dir():
            return cache
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".dl-", dir=cache.parent))
        self.fs.get(ref.path.rstrip("/") + "/", str(tmp), recursive=True)
        if dir_sha(dir_manifest(tmp)) != ref.sha256:
            shutil.rmtree(tmp, ignore_errors=True)
            raise OSError(f"{self.display(ref.path)}: downloaded files do not match the committed sha256")
        if cache.exists():
            shutil.rmtree(cache, ignore_errors=True)
        os.replace(tmp, cache)
        done.write_text("")
        return cache

    def read_meta(self, step: str, key: str, name: str) -> dict[str, Any] | None:
        """An artifact's meta (its commit point: sha256, rows, schema, files), or None when not committed."""
        return self._load_json(self.meta_path(step, key, name))

    def invalidate(self, step: str, key: str, fresh: bool = False) -> None:
        """Un-commit a step's outputs before recomputing them, so a killed recompute leaves
        nothing that looks complete, and remove the temp files of an earlier killed try.

        Units (a shard's qa + status) and the `_work/` scratch (checkpoints) stay,
        so a run after a kill resumes from them; `fresh` (--refresh) removes them too.
        """
        base = self.key_dir(step, key)
        if not self.fs.exists(base):
            return
        record = self.step_record_path(step, key)
        if self.fs.exists(record):
            self.fs.rm(record)  # first: from here on the step is not complete
        kept = self._unit_tables(base, drop=fresh)
        for meta in self.fs.glob(f"{base}/*.meta.json"):
            name = meta.rsplit("/", 1)[-1][: -len(".meta.json")]
            if name not in kept:
                self.fs.rm(meta)
        for entry in self.fs.ls(base, detail=False):
            fname = entry.rstrip("/").rsplit("/", 1)[-1]
            if _leftover(fname, kept) or (fresh and fname == "_work"):
                self.fs.rm(entry, recursive=True)

    def _unit_tables(self, base: str, drop: bool) -> set[str]:
        """The table names the committed units under a key folder name; with `drop`, the units are
        removed instead (and so name nothing)."""
        kept: set[str] = set()
        for unit in self.fs.glob(f"{base}/*.unit.json"):
            if drop:
                self.fs.rm(unit)
                continue
            doc = self._load_json(unit) or {"tables": {}}
            kept |= {ArtifactRef.from_dict(r).name for r in doc["tables"].values()}
        return kept

    def work_dir(self, step: str, key: str) -> Path:
        """Scratch for a step's key that survives a kill (training checkpoints): a local path.

        Under the key's folder on a local root; for a remote root, a local cache
        folder keyed by the root and key (a resume then needs the same machine).
        """
        if self.is_local:
            path = Path(self.key_dir(step, key)) / "_work"
        else:
            path = _local_cache() / "work" / hashlib.sha256(self.root.encode()).hexdigest()[:16] / step / key
        path.mkdir(parents=True, exist_ok=True)
        return path

    def clear_work(self, step: str, key: str) -> None:
        shutil.rmtree(self.work_dir(step, key), ignore_errors=True)

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
        """Recompute the sha256 of the data (every file of a directory) and compare it with the recorded one."""
        if ref.is_dir:
            return dir_sha(dir_manifest(self.local_dir(ref))) == ref.sha256 if self.is_local else True
        with self.fs.open(ref.path, "rb") as f:
            return _sha256_stream(f) == ref.sha256
