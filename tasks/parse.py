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

from infuse.operators.document import DOCUMENT_SCHEMA
from infuse.operators.ingest import parse_file, scan
from infuse.storage import ArtifactRef, ArtifactStore
from infuse.tasks.common import StepResult, StepSpec, finish, step_task

SPEC = StepSpec(
    name="parse",
    inputs=(),
    outputs=("documents",),
    description="read every file of the input folder into `documents` (one row per document or record)",
)
CACHE_STEP = "cache-parse"


def _max_bytes(cfg: dict[str, Any]) -> int:
    return int(cfg["max_file_mb"] * 1024 * 1024)


def check_input(input_dir: str) -> None:
    """A missing folder must fail loudly, not parse nothing and 'succeed'."""
    path = Path(input_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"input folder {path} does not exist or is not a folder (recipe key `input`)")


def key_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The folder's path is not part of the key: its files' names and contents are (see fingerprint)."""
    return {k: v for k, v in cfg.items() if k != "input_dir"}


def fingerprint(cfg: dict[str, Any]) -> dict[str, Any]:
    """What the parse output depends on besides code and config: the folder's file list and contents."""
    check_input(cfg["input_dir"])
    entries, rejects = scan(Path(cfg["input_dir"]), _max_bytes(cfg))
    return {
        "files": [[e.path_rel, e.sha256] for e in entries],
        "scan_rejects": [[r.id, r.reason] for r in rejects],
    }


def _parse_one(store: ArtifactStore, code: str, entry: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool, str]:
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
        return store.read(ref).to_pylist(), meta.get("rejects", []), True, sha
    rows, rejects = parse_file(entry, data)
    reject_rows = [r.to_row(SPEC.name) for r in rejects]
    store.write_table(CACHE_STEP, code, name, pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA),
                      extra={"rejects": reject_rows})
    return rows, reject_rows, False, sha


@step_task(SPEC)
def parse(store: ArtifactStore, key: str, cfg: dict[str, Any], inputs: dict[str, ArtifactRef],
          runtime: dict[str, Any]) -> StepResult:
    check_input(cfg["input_dir"])
    # no hashing here: each file is hashed once, as it is read for parsing
    entries, scan_rejects = scan(Path(cfg["input_dir"]), _max_bytes(cfg), hash_files=False)
    rejects = [r.to_row(SPEC.name) for r in scan_rejects]
    kept_files = 0
    code = SPEC.code_version()
    seen: dict[str, str] = {}
    reused = parsed = 0
    formats: dict[str, int] = {}
    with store.writer(SPEC.name, key, "documents", DOCUMENT_SCHEMA, row_group_size=2_000) as w:
        for entry in entries:
            rows, file_rejects, hit, sha = _parse_one(store, code, entry)
            reused += hit
            parsed += not hit
            if sha in seen:  # the same bytes under two names: keep the first, say so
                rejects.append({"id": entry.path_rel, "step": SPEC.name, "reason": "duplicate_file",
                                "message": f"same content as {seen[sha]}", "detail": "{}"})
                continue
            seen[sha] = entry.path_rel
            rejects += file_rejects  # ids are the file's path, or path#index for one bad record
            kept_files += bool(rows)
            for row in rows:  # a cached parse may have been made under another name
                row["path"] = entry.path_rel
                formats[row["format"]] = formats.get(row["format"], 0) + 1
            w.write(rows)
        docs = w.commit()
    files_in = len(entries) + len(scan_rejects)
    stats = {
        "files_in": files_in,
        "files_parsed": parsed,
        "files_from_cache": reused,
        "documents": docs.rows,
        "documents_by_format": formats,
        "_report": {"rows_in": files_in, "kept": kept_files, "unit_in": "files",
                    "unit_out": "files", "extra_md": f"{docs.rows} documents; parsed {parsed} file(s), "
                                                    f"{reused} from the per-file cache"},
    }
    return finish(store, SPEC, key, {"documents": docs}, rejects, stats)
