"""Shared rendering for record files (JSON, JSONL, CSV, XLSX): one record -> one document.

Each record is rendered as Markdown: the record title as a level-1 heading and
one level-2 section per field, so a later template step can turn every field
into its own QA pair (e.g. "what does X return?" -> the 返回值 field). The raw
fields stay in metadata["fields"] in their original order.
"""
from __future__ import annotations

import json
from typing import Any

from infuse.operators.document import ParsedDoc
from infuse.operators.parsers.sections import build_sections

TITLE_FIELDS = ("title", "name", "名称", "函数", "函数名", "标题")


def field_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float, bool)):
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def record_title(fields: dict[str, Any], path: str, index: int) -> tuple[str, Any]:
    """(title, the field it came from or None): a title-like field, else "path#index"."""
    lowered = {str(k).strip().lower(): k for k in fields}
    for name in TITLE_FIELDS:
        key = lowered.get(name)
        if key is not None:
            value = " ".join(field_text(fields[key]).split())
            if value:
                return value[:200], key
    return f"{path}#{index}", None


def render_record(fields: dict[str, Any], path: str, index: int, **metadata: Any) -> ParsedDoc:
    """The title field becomes the level-1 heading (not repeated as a section); other fields are level 2."""
    title, title_key = record_title(fields, path, index)
    text = f"# {title}"
    heads: list[tuple[int, str, int]] = [(1, title, 0)]
    for key, value in fields.items():
        value_text = field_text(value)
        if not value_text or key == title_key:
            continue
        name = " ".join(str(key).split()) or "(empty)"
        text += "\n\n"
        heads.append((2, name, len(text)))
        text += f"## {name}\n\n{value_text}"
    clean_fields = {str(k): v for k, v in fields.items()}
    has_content = any(field_text(v) for v in fields.values())  # else the record is empty (a reject)
    return ParsedDoc(
        title=title,
        text=text if has_content else "",
        sections=build_sections(heads, len(text)) if has_content else [],
        metadata={"fields": clean_fields, "record_index": index, **metadata},
    )


def combine(docs: list[ParsedDoc], title: str) -> ParsedDoc:
    """All records of a file as one document (what `parse` returns for callers that want one)."""
    text = "\n\n".join(d.text for d in docs if d.text)
    return ParsedDoc(title=title, text=text, metadata={"records": len(docs)})
