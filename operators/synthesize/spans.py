"""Find and trim spans of document text so template answers are exact source text."""
from __future__ import annotations

import re
from typing import Any

from infuse.operators.common.provenance import to_original


def strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink [start, end) past leading and trailing whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def find_value(text: str, value: str, hint: int = 0) -> tuple[int, int] | None:
    """Where `value` occurs in `text` (first at or after `hint`, else anywhere).

    Falls back to a whitespace-tolerant match, since parsers may re-flow
    spaces and newlines of a record's field.
    """
    value = value.strip()
    if not value:
        return None
    i = text.find(value, hint)
    if i < 0:
        i = text.find(value)
    if i >= 0:
        return i, i + len(value)
    words = value.split()
    if not words:
        return None
    pattern = r"\s*".join(re.escape(w) for w in words)
    m = re.compile(pattern).search(text, hint) or re.compile(pattern).search(text)
    return (m.start(), m.end()) if m else None


_PARA = re.compile(r"\n\s*\n")
_SENT = re.compile(r"[。！？!?；;]|\.(\s|$)|\n")


def cut(text: str, start: int, end: int, max_chars: int) -> tuple[int, int]:
    """Limit [start, end) to max_chars, ending at a paragraph, else sentence, end when one is in reach."""
    if end - start <= max_chars:
        return start, end
    window = text[start : start + max_chars]
    floor = max_chars // 2
    paras = [m.start() for m in _PARA.finditer(window) if m.start() >= floor]
    if paras:
        return strip_span(text, start, start + paras[-1])
    sents = [m.end() for m in _SENT.finditer(window) if m.end() >= floor]
    if sents:
        return strip_span(text, start, start + sents[-1])
    return start, start + max_chars


def chunk_span(chunk: dict[str, Any], value: str) -> tuple[int, int] | None:
    """Document offsets of `value` found in a chunk's (cleaned) text, or None.

    Through the chunk's offset_map, so the span points at the document's own
    characters even where clean changed the chunk: document.text[s:e] covers `value`.
    """
    found = find_value(chunk.get("text") or "", value)
    return to_original(chunk, *found) if found else None
