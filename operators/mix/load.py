"""Reading general datasets: files (JSON, JSONL, Parquet) into rows, rows into samples.

A file that cannot be read at all is one reject for the whole source
(`unreadable_file`); a bad line or row is that row's reject. A missing file is
a recipe error, raised before any work (the path is wrong, not the data).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infuse.operators.common.base import OperatorError, Reject
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


_NOT_JSON = object()


def read_rows(path: Path) -> list[tuple[int, Any]]:
    """(index, row) for every row; a line that is not JSON comes as a RowError in its place.
    OperatorError when the file as a whole cannot be read."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            return list(enumerate(pq.read_table(path).to_pylist()))
        except Exception as e:  # pyarrow raises several types for a corrupt file
            raise OperatorError("unreadable_file", f"not a readable Parquet file: {e}") from e
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # what datasets nearly always are; the full detector is for the rest
    except UnicodeDecodeError:
        text, _ = decode_text(raw)
    if path.suffix.lower() == ".json":
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = _NOT_JSON  # many ".json" datasets are JSON Lines: read it as that
        if value is not _NOT_JSON:
            if isinstance(value, dict) and len(value) == 1 and isinstance(next(iter(value.values())), list):
                value = next(iter(value.values()))  # {"data": [...]}
            return list(enumerate(value if isinstance(value, list) else [value]))
    rows: list[tuple[int, Any]] = []
    # split on newlines only: splitlines() would also cut at U+2028/U+0085 inside JSON strings
    for number, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            rows.append((len(rows), json.loads(line)))
        except json.JSONDecodeError as e:
            rows.append((len(rows), RowError("malformed_json", f"line {number} is not JSON: {e}")))
    if rows and all(isinstance(r, RowError) for _, r in rows):
        raise OperatorError("unreadable_file", f"neither a JSON document nor JSON Lines ({rows[0][1].message})")
    return rows


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
