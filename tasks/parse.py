"""parse: a folder of files -> `documents`, parsed incrementally per file content hash.

Each file's parse is cached under cache-parse/<code version>/<hash of its bytes
and its path> (the extension picks the parser, the name can be the title), so
adding one file to a folder of N parses only that file, and a removed file
simply drops out of the output.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import Field

from infuse.operators.common.base import Reject, check_stop
from infuse.operators.parsers.document import DOCUMENT_SCHEMA
from infuse.operators.parsers.ingest import check_input, duplicate_file, parse_file, scan
from infuse.operators.parsers import parser_for
from infuse.storage import ArtifactStore
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, table
from infuse.tasks.framework.checks import AllRejected, nothing_kept, shown

CACHE_STEP = "cache-parse"


class ParseOptions(StepOptions):
    max_file_mb: float = Field(50.0, gt=0, description="files over this size are rejected as too_large")


class Parse(Step):
    name = "parse"
    stage = 10
    description = "read every file of the input folder into `documents` (one row per document or record)"
    outputs = {"documents": table(DOCUMENT_SCHEMA)}
    Options = ParseOptions

    def config(self, recipe: Any) -> dict[str, Any]:
        return {**super().config(recipe), "input_dir": str(Path(recipe.input).resolve())}

    def key_config(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """The folder's path is not part of the key: its files' names and contents are (fingerprint)."""
        return {k: v for k, v in super().key_config(cfg).items() if k != "input_dir"}

    def fingerprint(self, cfg: dict[str, Any]) -> dict[str, Any]:
        check_input(cfg["input_dir"])
        entries, rejects = scan(Path(cfg["input_dir"]), _max_bytes(cfg))
        return {"files": [[e.path_rel, e.sha256] for e in entries], "scan_rejects": [[r.id, r.reason] for r in rejects]}

    def check(self, cfg: dict[str, Any]) -> list[str]:
        """A folder whose every file parse would reject before reading it (empty, no parser, over max_file_mb)
        is said here, before any work; files that must be read to be judged are said by run()."""
        folder = Path(cfg["input_dir"])
        if not folder.is_dir():
            return []  # the CLI says so, naming the recipe key `input`
        limit = _max_bytes(cfg)
        fates: list[tuple[str, str, str]] = []
        for path in folder.rglob("*"):
            rel = path.relative_to(folder)
            if any(part.startswith(".") for part in rel.parts) or not path.is_file():
                continue
            size = path.stat().st_size
            if size == 0:
                fates.append((rel.as_posix(), "empty", f"{shown(path)} is empty (0 bytes)"))
            elif parser_for(rel.as_posix()) is None:
                fates.append((rel.as_posix(), "unsupported_extension",
                              f"{shown(path)}: no parser for '{path.suffix or '(none)'}'"))
            elif size > limit:
                fates.append((rel.as_posix(), "too_large", _too_large(shown(path), size, cfg["max_file_mb"])))
            else:
                return []  # a file parse will read
        return [nothing_kept("input files", [(r, t) for _, r, t in sorted(fates)])] if fates else []

    def run(self, ctx: StepContext) -> StepOutput:
        check_input(ctx.cfg["input_dir"])
        # no hashing here: each file is hashed once, as it is read for parsing
        entries, scan_rejects = scan(Path(ctx.cfg["input_dir"]), _max_bytes(ctx.cfg), hash_files=False)
        rejects = list(scan_rejects)
        # lineage: every file of the folder, the sha256 of the bytes read (files never read have none), its fate
        files = {r.id: {"path": r.id, "sha256": "", "bytes": (r.detail or {}).get("size"), "fate": r.reason}
                 for r in scan_rejects}
        code = self.code_version()
        seen: dict[str, str] = {}
        kept_files = reused = parsed = 0
        formats: dict[str, int] = {}
        with ctx.writer("documents", row_group_size=2_000) as w, ctx.progress(len(entries), "parse", "files") as bar:
            for entry in entries:
                check_stop()
                rows, file_rejects, hit, sha = _parse_one(ctx.store, code, entry)
                bar.update()
                reused += hit
                parsed += not hit
                fate = {"path": entry.path_rel, "sha256": sha, "bytes": entry.size}
                files[entry.path_rel] = fate
                if sha in seen:  # the same bytes under two names: keep the first, say so
                    rejects.append(duplicate_file(entry.path_rel, seen[sha]))
                    fate["fate"] = "duplicate_file"
                    continue
                seen[sha] = entry.path_rel
                rejects += file_rejects  # ids are the file's path, or path#index for one bad record
                kept_files += bool(rows)
                fate["fate"] = "kept" if rows else (file_rejects[0].reason if file_rejects else "no_documents")
                for row in rows:  # a cached parse may have been made under another name
                    row["path"] = entry.path_rel
                    formats[row["format"]] = formats.get(row["format"], 0) + 1
                w.write(rows)
            docs = w.commit()
        files_in = len(entries) + len(scan_rejects)
        if files_in and not kept_files:  # nothing for any later step: fail, saying why, not a run of 0 rows
            raise AllRejected(nothing_kept("input files", [_fate(ctx.cfg, files[k], rejects) for k in sorted(files)]))
        return StepOutput({"documents": docs}, rejects, StepReport(
            rows_in=files_in, kept=kept_files, unit_in="files", unit_out="files",
            markdown=f"{docs.rows} documents; parsed {parsed} file(s), {reused} from the per-file cache",
            stats={"files_in": files_in, "files_parsed": parsed, "files_from_cache": reused, "documents": docs.rows,
                   "documents_by_format": formats, "input_files": [files[k] for k in sorted(files)]}))


def _max_bytes(cfg: dict[str, Any]) -> int:
    return int(cfg["max_file_mb"] * 1024 * 1024)


def _too_large(path: str, size: int, max_file_mb: float) -> str:
    return f"{path} is {size / 1024 / 1024:.1f} MB, over max_file_mb {max_file_mb:g}"


def _fate(cfg: dict[str, Any], file: dict[str, Any], rejects: list[Reject]) -> tuple[str, str]:
    """(reason, what happened to it) of one rejected input file, for AllRejected."""
    path, reason = file["path"], file["fate"]
    where = shown(Path(cfg["input_dir"]) / path)
    if reason == "too_large":
        return reason, _too_large(where, file["bytes"] or 0, cfg["max_file_mb"])
    first = next((r for r in rejects if r.id == path or r.id.startswith(path + "#")), None)
    message = " ".join((first.message if first else "the parser found no document in it").split())
    return reason, f"{where}: {message[:200]}"


def _parse_one(store: ArtifactStore, code: str, entry: Any) -> tuple[list[dict[str, Any]], list[Reject], bool, str]:
    """Rows, rejects, whether they came from the per-file cache, and the sha256 of the bytes read.

    The cache is keyed by the bytes actually read (a file rewritten since the
    scan is parsed as it is now) and by the file's path.
    """
    data = Path(entry.abs_path).read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    entry = dataclasses.replace(entry, sha256=sha, size=len(data))
    name = hashlib.sha256(f"{sha}:{entry.path_rel}".encode()).hexdigest()
    ref = store.committed(CACHE_STEP, code, name)
    if ref is not None:
        meta = store.read_meta(CACHE_STEP, code, name) or {}
        return store.read(ref).to_pylist(), [Reject.from_row(r) for r in meta.get("rejects", [])], True, sha
    rows, rejects = parse_file(entry, data)
    store.write_table(CACHE_STEP, code, name, pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA),
                      extra={"rejects": [r.to_row("parse") for r in rejects]})
    return rows, rejects, False, sha
