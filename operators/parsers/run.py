"""`parse_files`: the scanned files of an input folder -> document rows, rejects and every file's fate.

Plain inputs and outputs, so it runs without a flow: the step passes in the
per-file cache (a parse kept by the bytes read and the file's path; StoreCache
keeps it in the step's artifact store), where the rows go (`write`, called once
per file) and a progress tick. The same bytes
under a second name are parsed once and kept under the first name only.
`folder_fates` and `ParseResult.fates` say what happened to each input file,
for the message of a run that kept none.
"""
from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from infuse.operators.common.base import Reject, check_stop
from infuse.operators.parsers import parser_for
from infuse.operators.parsers.document import DOCUMENT_SCHEMA
from infuse.operators.parsers.ingest import FileEntry, duplicate_file, parse_file, scan

Show = Callable[[Path], str]  # how a path is written in a message (the CLI: relative to where infuse runs)


class FileCache(Protocol):
    """Parses kept across runs, by a name made of the file's bytes and path."""

    def get(self, name: str) -> tuple[list[dict[str, Any]], list[Reject]] | None: ...

    def put(self, name: str, rows: list[dict[str, Any]], rejects: list[Reject]) -> None: ...


class StoreCache:
    """A FileCache in the step's artifact store (passed in): rows as a table under `step`/`code`/name, rejects
    in its meta."""

    def __init__(self, store: Any, step: str, code: str) -> None:
        self.store, self.step, self.code = store, step, code

    def get(self, name: str) -> tuple[list[dict[str, Any]], list[Reject]] | None:
        ref = self.store.committed(self.step, self.code, name)
        if ref is None:
            return None
        meta = self.store.read_meta(self.step, self.code, name) or {}
        return self.store.read(ref).to_pylist(), [Reject.from_row(r) for r in meta.get("rejects", [])]

    def put(self, name: str, rows: list[dict[str, Any]], rejects: list[Reject]) -> None:
        self.store.write_table(self.step, self.code, name, pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA),
                               extra={"rejects": [r.to_row("parse") for r in rejects]})


def max_bytes(max_file_mb: float) -> int:
    return int(max_file_mb * 1024 * 1024)


def too_large(where: str, size: int, max_file_mb: float) -> str:
    return f"{where} is {size / 1024 / 1024:.1f} MB, over max_file_mb {max_file_mb:g}"


def fingerprint(folder: Path, max_file_mb: float) -> dict[str, Any]:
    """What parse's output depends on besides its code and options: each file's path and content hash, and the
    files the scan rejects."""
    entries, rejects = scan(folder, max_bytes(max_file_mb))
    return {"files": [[e.path_rel, e.sha256] for e in entries], "scan_rejects": [[r.id, r.reason] for r in rejects]}


def _unread_fate(path: Path, rel: str, limit: int, max_file_mb: float, show: Show) -> tuple[str, str] | None:
    """(reason, text) of a file parse rejects without reading it (empty, no parser, too large), else None."""
    size = path.stat().st_size
    if size == 0:
        return "empty", f"{show(path)} is empty (0 bytes)"
    if parser_for(rel) is None:
        return "unsupported_extension", f"{show(path)}: no parser for '{path.suffix or '(none)'}'"
    if size > limit:
        return "too_large", too_large(show(path), size, max_file_mb)
    return None


def folder_fates(folder: Path, max_file_mb: float, show: Show) -> list[tuple[str, str]]:
    """(reason, text) per file, by path, when parse would reject every file of the folder before reading it;
    [] as soon as one file will be read (files that must be read to be judged are said by the run)."""
    fates: list[tuple[str, str, str]] = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        fate = _unread_fate(path, rel.as_posix(), max_bytes(max_file_mb), max_file_mb, show)
        if fate is None:
            return []
        fates.append((rel.as_posix(), *fate))
    return [(reason, text) for _, reason, text in sorted(fates)]


def parse_cached(cache: FileCache, entry: FileEntry) -> tuple[list[dict[str, Any]], list[Reject], bool, str]:
    """Rows, rejects, whether they came from the cache, and the sha256 of the bytes read.

    The cache name is made of the bytes actually read (a file rewritten since
    the scan is parsed as it is now) and the file's path.
    """
    data = Path(entry.abs_path).read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    entry = dataclasses.replace(entry, sha256=sha, size=len(data))
    name = hashlib.sha256(f"{sha}:{entry.path_rel}".encode()).hexdigest()
    found = cache.get(name)
    if found is not None:
        return found[0], found[1], True, sha
    rows, rejects = parse_file(entry, data)
    cache.put(name, rows, rejects)
    return rows, rejects, False, sha


@dataclass
class ParseResult:
    rejects: list[Reject]
    files: dict[str, dict[str, Any]]  # path -> {path, sha256, bytes, fate}: every input file's lineage
    parsed: int = 0
    reused: int = 0  # files whose parse came from the cache
    kept_files: int = 0
    documents: int = 0
    formats: dict[str, int] = field(default_factory=dict)  # documents by format

    @property
    def input_files(self) -> list[dict[str, Any]]:
        return [self.files[k] for k in sorted(self.files)]

    def fates(self, folder: Path, max_file_mb: float, show: Show) -> list[tuple[str, str]]:
        """(reason, what happened to it) of every input file, for a run that kept none."""
        return [self._fate(folder, f, max_file_mb, show) for f in self.input_files]

    def _fate(self, folder: Path, file: dict[str, Any], max_file_mb: float, show: Show) -> tuple[str, str]:
        path, reason = file["path"], file["fate"]
        where = show(folder / path)
        if reason == "too_large":
            return reason, too_large(where, file["bytes"] or 0, max_file_mb)
        first = next((r for r in self.rejects if r.id == path or r.id.startswith(path + "#")), None)
        message = " ".join((first.message if first else "the parser found no document in it").split())
        return reason, f"{where}: {message[:200]}"

    def add(self, entry: FileEntry, rows: list[dict[str, Any]], rejects: list[Reject], sha: str,
            seen: dict[str, str]) -> list[dict[str, Any]]:
        """Record one parsed file; returns the rows to keep (none for the second name of the same bytes)."""
        fate = {"path": entry.path_rel, "sha256": sha, "bytes": entry.size}
        self.files[entry.path_rel] = fate
        if sha in seen:
            self.rejects.append(duplicate_file(entry.path_rel, seen[sha]))
            fate["fate"] = "duplicate_file"
            return []
        seen[sha] = entry.path_rel
        self.rejects += rejects  # ids are the file's path, or path#index for one bad record
        self.kept_files += bool(rows)
        fate["fate"] = "kept" if rows else (rejects[0].reason if rejects else "no_documents")
        for row in rows:  # a cached parse may have been made under another name
            row["path"] = entry.path_rel
            self.formats[row["format"]] = self.formats.get(row["format"], 0) + 1
        self.documents += len(rows)
        return rows


def parse_files(entries: list[FileEntry], scan_rejects: list[Reject], cache: FileCache,
                write: Callable[[list[dict[str, Any]]], None], tick: Callable[[], Any] = lambda: None) -> ParseResult:
    """Parse every scanned file (or take its parse from the cache) and pass its rows to `write`, in order."""
    res = ParseResult(list(scan_rejects), {r.id: {"path": r.id, "sha256": "", "bytes": (r.detail or {}).get("size"),
                                                  "fate": r.reason} for r in scan_rejects})
    seen: dict[str, str] = {}
    for entry in entries:
        check_stop()
        rows, rejects, hit, sha = parse_cached(cache, entry)
        tick()
        res.reused += hit
        res.parsed += not hit
        write(res.add(entry, rows, rejects, sha, seen))
    return res
