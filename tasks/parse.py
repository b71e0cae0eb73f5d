"""parse: a folder of files -> `documents`, parsed incrementally per file content hash.

Each file's parse is cached under cache-parse/<code version>/<sha256>, so adding
one file to a folder of N parses only that file, and a removed file simply
drops out of the output.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from operators.document import DOCUMENT_SCHEMA
from operators.ingest import parse_file, scan
from storage import ArtifactRef, ArtifactStore
from tasks.common import StepResult, StepSpec, finish, step_task

SPEC = StepSpec(
    name="parse",
    operators=("operators.ingest", "operators.parsers", "operators.document"),
    inputs=(),
    outputs=("documents",),
    description="read every file of the input folder into `documents` (one row per document or record)",
)
CACHE_STEP = "cache-parse"


def _max_bytes(cfg: dict[str, Any]) -> int:
    return int(cfg["max_file_mb"] * 1024 * 1024)


def fingerprint(cfg: dict[str, Any]) -> dict[str, Any]:
    """What the parse output depends on besides code and config: the folder's file list and contents."""
    entries, rejects = scan(Path(cfg["input_dir"]), _max_bytes(cfg))
    return {
        "files": [[e.path_rel, e.sha256] for e in entries],
        "scan_rejects": [[r.id, r.reason] for r in rejects],
    }


def _parse_one(store: ArtifactStore, code: str, entry: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
    """Rows and rejects for one file, from the per-file cache when this content was parsed before."""
    meta = store.read_meta(CACHE_STEP, code, entry.sha256)
    if meta is not None and store.fs.exists(meta["path"]):
        rows = store.read(ArtifactRef.from_dict({k: meta[k] for k in ArtifactRef.__dataclass_fields__})).to_pylist()
        return rows, meta.get("rejects", []), True
    data = Path(entry.abs_path).read_bytes()
    rows, rejects = parse_file(entry, data)
    reject_rows = [r.to_row(SPEC.name) for r in rejects]
    store.write_table(CACHE_STEP, code, entry.sha256, pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA),
                      extra={"rejects": reject_rows})
    return rows, reject_rows, False


@step_task(SPEC)
def parse(store: ArtifactStore, key: str, cfg: dict[str, Any], inputs: dict[str, ArtifactRef],
          runtime: dict[str, Any]) -> StepResult:
    entries, scan_rejects = scan(Path(cfg["input_dir"]), _max_bytes(cfg))
    rejects = [r.to_row(SPEC.name) for r in scan_rejects]
    code = SPEC.code_version()
    seen: dict[str, str] = {}
    reused = parsed = 0
    formats: dict[str, int] = {}
    with store.writer(SPEC.name, key, "documents", DOCUMENT_SCHEMA, row_group_size=2_000) as w:
        for entry in entries:
            rows, file_rejects, hit = _parse_one(store, code, entry)
            reused += hit
            parsed += not hit
            rejects += [{**r, "id": entry.path_rel} for r in file_rejects]
            if entry.sha256 in seen:  # the same bytes under two names: keep the first, say so
                rejects.append({"id": entry.path_rel, "step": SPEC.name, "reason": "duplicate_file",
                                "message": f"same content as {seen[entry.sha256]}", "detail": "{}"})
                continue
            seen[entry.sha256] = entry.path_rel
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
        "_report": {"rows_in": files_in, "kept": files_in - len(rejects), "unit_in": "files",
                    "unit_out": "files", "extra_md": f"{docs.rows} documents; parsed {parsed} file(s), "
                                                    f"{reused} from the per-file cache"},
    }
    return finish(store, SPEC, key, {"documents": docs}, rejects, stats)
