"""The document and chunk rows that pass between parse, chunk and later steps.

`text` is the whole normalised document text; sections and pages point into it
with [start, end) character offsets, so every later row can cite its source.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa


@dataclass
class Section:
    """A heading and the span of text it governs (its body, up to the next heading at the same or a higher level)."""

    heading_path: list[str]
    level: int
    start: int
    end: int


@dataclass
class Page:
    """A page (PDF) or slide (PPTX) and its span in the document text."""

    page: int
    start: int
    end: int


@dataclass
class ParsedDoc:
    """What a parser returns for one file."""

    title: str
    text: str
    sections: list[Section] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    format: str | None = None  # when it differs from the parser's: a JSONL text record reads as txt


DOCUMENT_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),  # sha256 of the file bytes
        ("path", pa.string()),  # relative to the input folder
        ("format", pa.string()),
        ("title", pa.string()),
        ("text", pa.string()),
        (
            "sections",
            pa.list_(
                pa.struct(
                    [
                        ("heading_path", pa.list_(pa.string())),
                        ("level", pa.int32()),
                        ("start", pa.int64()),
                        ("end", pa.int64()),
                    ]
                )
            ),
        ),
        ("pages", pa.list_(pa.struct([("page", pa.int32()), ("start", pa.int64()), ("end", pa.int64())]))),
        ("metadata", pa.string()),  # JSON object; records keep their fields under "fields"
    ]
)

CHUNK_SCHEMA = pa.schema(
    [
        ("chunk_id", pa.string()),  # sha256(doc_id:start:end)[:32]
        ("doc_id", pa.string()),
        ("path", pa.string()),
        ("format", pa.string()),
        ("chunk_index", pa.int32()),
        ("text", pa.string()),  # == document.text[start:end] (after clean: see offset_map)
        ("heading_path", pa.list_(pa.string())),
        ("page", pa.int32()),  # null when the format has no pages
        ("start", pa.int64()),
        ("end", pa.int64()),
        ("kind", pa.string()),  # text | table | code | record
        ("code_lang", pa.string()),  # kind code: the fence's language (```python), a <pre>'s, or the code file's
        # set by clean where it changed the text: (cleaned offset, original offset, length) triples of the shared
        # blocks, relative to the chunk; operators.provenance.to_original maps a span of `text` back to the document
        ("offset_map", pa.list_(pa.int32())),
    ]
)


def document_row(doc_id: str, path: str, fmt: str, parsed: ParsedDoc) -> dict[str, Any]:
    """Flatten a ParsedDoc into one row of DOCUMENT_SCHEMA."""
    return {
        "doc_id": doc_id,
        "path": path,
        "format": fmt,
        "title": parsed.title,
        "text": parsed.text,
        "sections": [
            {"heading_path": list(s.heading_path), "level": s.level, "start": s.start, "end": s.end}
            for s in parsed.sections
        ],
        "pages": [{"page": p.page, "start": p.start, "end": p.end} for p in parsed.pages],
        # no sort_keys: a record's fields keep their order
        "metadata": json.dumps(parsed.metadata, ensure_ascii=False, default=str),
    }
