"""The texts a sample is checked against: its source chunks (grounding) and its document (what it may quote)."""
from __future__ import annotations

from typing import Any, Callable

import pyarrow as pa

Sources = dict[str, str] | Callable[[str], str | None]
Lookup = Callable[[str], str | None]


def lookup(sources: Sources | None) -> Lookup:
    """id -> text, from a dict, a function or nothing."""
    if sources is None:
        return lambda cid: None
    if callable(sources):
        return sources
    return sources.get


def source_text(row: dict[str, Any], chunk: Lookup) -> str | None:
    """The text of a row's source chunks (source_chunk_ids, else its chunk_id), joined; None when none is known."""
    ids = list(row.get("source_chunk_ids") or []) or ([row["chunk_id"]] if row.get("chunk_id") else [])
    texts = [t for t in (chunk(cid) for cid in ids) if t]
    return "\n".join(texts) if texts else None


class DocTexts:
    """doc_id -> its chunks' text joined, built on first use: what the language check lets a sample quote."""

    def __init__(self, docs: list[str], texts: list[str]) -> None:
        self.docs, self.texts = docs, texts
        self.by_doc: dict[str, list[int]] | None = None

    def __call__(self, doc_id: str) -> str | None:
        if self.by_doc is None:
            self.by_doc = {}
            for i, d in enumerate(self.docs):
                self.by_doc.setdefault(d, []).append(i)
        rows = self.by_doc.get(doc_id)
        return "\n".join(self.texts[i] for i in rows) if rows else None


def chunk_sources(chunks: pa.Table) -> tuple[dict[str, str], DocTexts]:
    """(chunk_id -> text, doc_id -> text) of a chunks table with chunk_id, doc_id and text."""
    ids, docs, texts = (chunks.column(c).to_pylist() for c in ("chunk_id", "doc_id", "text"))
    return dict(zip(ids, texts)), DocTexts(docs, texts)
