"""Reading general datasets: files (JSON, JSONL, Parquet) into rows, rows into samples.

A file that cannot be read at all is one reject for the whole source
(`unreadable_file`); a bad line or row is that row's reject. A missing file is
a recipe error, raised before any work (the path is wrong, not the data).
`check_rows` and `row_problem` read a file the same way for `infuse validate`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infuse.operators.common.base import OperatorError, Reject
from infuse.operators.common.jsonl import parse_lines
from infuse.operators.common.lang import detect_lang
from infuse.operators.mix.config import GeneralSource
from infuse.operators.mix.formats import to_messages
from infuse.operators.mix.identity import Identity
from infuse.operators.mix.sample import RowError, Sample, content_id
from infuse.operators.parsers.textdecode import decode_text

DATA_DIR = Path(__file__).resolve().parent / "data"
BUILTIN_FILES = {"general_zh": "general_zh.jsonl", "general_en": "general_en.jsonl", "identity": "identity.json"}


class MixInputError(ValueError):
    """A general source the recipe names but that is not there: fix the recipe."""


def source_path(src: GeneralSource) -> Path:
    """The file of a source (a builtin's inside the package); MixInputError when it does not exist."""
    path = DATA_DIR / BUILTIN_FILES[src.builtin] if src.builtin else Path(src.path or "")
    if not path.is_file():
        raise MixInputError(f"steps.mix.general: source {src.source_name!r}: no such file: {src.path} "
                            f"(paths are relative to the directory you run infuse from)")
    if path.suffix.lower() not in (".json", ".jsonl", ".ndjson", ".parquet"):
        raise MixInputError(f"steps.mix.general: source {src.source_name!r}: {path.name} is not .json, .jsonl "
                            f"or .parquet")
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def decode(raw: bytes) -> str:
    """A general file's text: UTF-8 (a BOM dropped), what datasets nearly always are; else the full detector."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return decode_text(raw)[0]


def _parquet_rows(path: Path) -> list[Any]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as e:  # pyarrow raises several types for a corrupt file
        raise OperatorError("unreadable_file", f"not a readable Parquet file: {e}") from e


def _document_rows(text: str) -> list[Any] | None:
    """The rows of a JSON document (a list, `{"data": [...]}` or one object); None when the text is not one
    JSON value (many ".json" datasets are JSON Lines)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(value, dict) and len(value) == 1 and isinstance(next(iter(value.values())), list):
        value = next(iter(value.values()))  # {"data": [...]}
    return value if isinstance(value, list) else [value]


def _jsonl_rows(text: str) -> list[Any]:
    """Every non-blank line's row, a line that is not JSON as a RowError; OperatorError when no line is JSON."""
    rows = [line.value if line.ok else RowError("malformed_json", f"line {line.number} is not JSON: {line.error}")
            for line in parse_lines(text)]
    if rows and all(isinstance(r, RowError) for r in rows):
        raise OperatorError("unreadable_file", f"neither a JSON document nor JSON Lines ({rows[0].message})")
    return rows


def read_rows(path: Path) -> list[tuple[int, Any]]:
    """(index, row) for every row; a line that is not JSON comes as a RowError in its place.
    OperatorError when the file as a whole cannot be read."""
    if path.suffix.lower() == ".parquet":
        return list(enumerate(_parquet_rows(path)))
    text = decode(path.read_bytes())
    rows = _document_rows(text) if path.suffix.lower() == ".json" else None
    return list(enumerate(_jsonl_rows(text) if rows is None else rows))


def check_rows(path: Path) -> list[tuple[str, Any]]:
    """A general file's rows as `infuse validate` names them: ("line N", row) for JSON Lines, a line that is
    not JSON as a RowError with its JSON error; ("row i", row) for a JSON document or Parquet. OperatorError
    when the file as a whole cannot be read."""
    if path.suffix.lower() != ".parquet":
        text = decode(path.read_bytes())
        if path.suffix.lower() != ".json" or _document_rows(text) is None:
            return [(f"line {line.number}", line.value if line.ok else RowError("malformed_json", line.message))
                    for line in parse_lines(text)]
    return [(f"row {i}", row) for i, row in read_rows(path)]


def row_problem(row: Any, src: GeneralSource) -> str | None:
    """What stops mix reading one row of a general file as alpaca, sharegpt or messages (None: it reads)."""
    if isinstance(row, RowError):
        return row.message
    try:
        to_messages(row, src.format, src.columns)
    except RowError as e:
        return f"{e.reason}: {e.message}"
    return None


@dataclass
class Loaded:
    samples: list[Sample] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    rows_read: int = 0
    formats: dict[str, int] = field(default_factory=dict)


def load_source(src: GeneralSource, identity: Identity) -> Loaded:
    """Every row of one general source as a sample, or as a reject with its reason."""
    name, out = src.source_name, Loaded()
    path = source_path(src)
    try:
        rows = read_rows(path)
    except OperatorError as e:
        out.rejects.append(Reject(name, e.reason, f"{path.name}: {e.message}", {"source": name}))
        return out
    if not rows:
        out.rejects.append(Reject(name, "empty_file", f"{path.name} has no rows", {"source": name}))
    for index, row in rows:
        out.rows_read += 1
        ref = f"{name}#{index}"
        try:
            if isinstance(row, RowError):
                raise row
            messages, fmt = to_messages(row, src.format, src.columns)
            lang = src.lang or _row_lang(row) or detect_lang(" ".join(m["content"] for m in messages))
            messages = identity.fill(messages, lang)
        except RowError as e:
            out.rejects.append(Reject(ref, e.reason, e.message, {"source": name, "row": index}))
            continue
        out.formats[fmt] = out.formats.get(fmt, 0) + 1
        out.samples.append(Sample(content_id(name, messages), messages, name, src.row_kind, ref,
                                  strategy=fmt, lang=lang))
    return out


def _row_lang(row: Any) -> str | None:
    lang = row.get("lang") if isinstance(row, dict) else None
    return lang if lang in ("zh", "en") else None
