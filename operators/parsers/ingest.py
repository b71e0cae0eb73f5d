"""Ingest: find the files of an input folder and parse each into document rows.

Ids: a document's doc_id is the sha256 of its file's bytes; a record file (JSON,
JSONL, CSV, XLSX) gives one document per record with doc_id
"<sha256 of the file>:<record index>", so records of one file share a prefix and
stay stable while the file is unchanged. Reject ids are the file's path relative
to the input folder (a single empty record: "<path>#<index>").
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infuse.operators.common.base import OperatorError, Reject
from infuse.operators.parsers.document import ParsedDoc, document_row
from infuse.operators.parsers import parser_for

REASONS = ("encrypted", "corrupt", "empty", "unsupported_extension", "binary_content", "too_large", "undecodable",
           "duplicate_file")
_CHUNK = 1 << 20


@dataclass
class FileEntry:
    path_rel: str
    abs_path: Path
    size: int
    sha256: str


def check_input(input_dir: str | Path) -> None:
    """A missing folder must fail loudly, not parse nothing and 'succeed'."""
    path = Path(input_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"input folder {path} does not exist or is not a folder (recipe key `input`)")


def duplicate_file(path_rel: str, first: str) -> Reject:
    """The same bytes under a second name: the first name is kept."""
    return Reject(path_rel, "duplicate_file", f"same content as {first}", {"kept": first})


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def _whitespace_only(path: Path) -> bool:
    """True for a file of only whitespace (ASCII, or UTF-16/BOM padding); reads at most 1 MiB to decide."""
    with path.open("rb") as f:
        head = f.read(_CHUNK)
    if len(head) == _CHUNK:
        return False
    stripped = head.replace(b"\x00", b"").replace(b"\xef\xbb\xbf", b"").replace(b"\xff\xfe", b"").replace(b"\xfe\xff", b"")
    return not stripped.strip()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def scan(folder: Path, max_file_bytes: int, hash_files: bool = True) -> tuple[list[FileEntry], list[Reject]]:
    """Every non-hidden file under folder, sorted by relative path, or a Reject saying why not.

    Checks run cheapest first: size 0, extension, size limit (never read), then
    whitespace-only, then the content hash (skipped with hash_files=False, for a
    caller that hashes the bytes it reads anyway; sha256 is then "").
    """
    folder = Path(folder)
    entries: list[FileEntry] = []
    rejects: list[Reject] = []
    files = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.relative_to(folder).as_posix())
    for path in files:
        rel = path.relative_to(folder)
        if _hidden(rel):
            continue
        rel_s = rel.as_posix()
        stat = path.stat()
        size = stat.st_size
        if size == 0:
            rejects.append(Reject(rel_s, "empty", "file is empty (0 bytes)", {"size": 0}))
            continue
        if parser_for(rel_s) is None:
            rejects.append(Reject(rel_s, "unsupported_extension", f"no parser for '{path.suffix or '(none)'}'",
                                  {"size": size, "extension": path.suffix.lower()}))
            continue
        if size > max_file_bytes:
            fingerprint = hashlib.sha256(f"{rel_s}:{size}:{stat.st_mtime_ns}".encode()).hexdigest()
            rejects.append(Reject(rel_s, "too_large", f"{size} bytes is over the {max_file_bytes}-byte limit",
                                  {"size": size, "limit": max_file_bytes, "fingerprint": fingerprint}))
            continue
        if _whitespace_only(path):
            rejects.append(Reject(rel_s, "empty", "file holds only whitespace", {"size": size}))
            continue
        entries.append(FileEntry(rel_s, path, size, _sha256(path) if hash_files else ""))
    return entries, rejects


def _docs(parser: Any, data: bytes, path: str) -> list[ParsedDoc]:
    if getattr(parser, "multi", False):
        return list(parser.parse_records(data, path))
    return [parser.parse(data, path)]


def parse_file(entry: FileEntry, data: bytes) -> tuple[list[dict[str, Any]], list[Reject]]:
    """Document rows for one file, or Rejects. Never raises for a bad file."""
    path = entry.path_rel
    parser = parser_for(path)
    if parser is None:
        return [], [Reject(path, "unsupported_extension", f"no parser for {path}")]
    try:
        docs = _docs(parser, data, path)
    except OperatorError as e:
        return [], [e.to_reject(path)]
    except Exception as e:  # any library failure on a bad file is this file's problem only
        return [], [Reject(path, "corrupt", f"{type(e).__name__}: {e}"[:500], {"exception": type(e).__name__})]
    sha = hashlib.sha256(data).hexdigest()
    rows: list[dict[str, Any]] = []
    rejects: list[Reject] = []
    multi = getattr(parser, "multi", False)
    for index, doc in enumerate(docs):
        bad = doc.metadata.get("reject") if multi else None
        if bad:  # one record of the file failed to parse
            rejects.append(Reject(f"{path}#{index}", bad["reason"], bad["message"], {"format": parser.format}))
            continue
        if not doc.text.strip():
            rid = f"{path}#{index}" if multi else path
            rejects.append(Reject(rid, "empty", "no text after parsing", {"format": parser.format}))
            continue
        replaced = doc.text.count("\ufffd")
        if replaced:  # U+FFFD in the source is content; say how much of it there is
            doc.metadata["replacement_chars"] = replaced
        doc_id = f"{sha}:{index}" if multi else sha
        rows.append(document_row(doc_id, path, doc.format or parser.format, doc))
    if multi and not docs:
        rejects.append(Reject(path, "empty", "no records in file", {"format": parser.format}))
    return rows, rejects
