"""Shared rendering for record files (JSON, JSONL, CSV, XLSX): one record -> one document.

Two layouts:
- a text record, the common corpus layout (`{"id": ..., "url": ..., "text": ...}`):
  one long text-like field (text, content, body, article, else a string field
  that dwarfs the others) and only short scalars besides. The document's text
  is that field alone and its format is `txt`, so it is chunked and
  synthesised as prose; the short fields go to metadata["record_fields"]
  (metadata["text_field"] names the text's field).
- a structured record (a C API entry: 语法, 返回值, 备注): rendered as Markdown,
  the record title as a level-1 heading and one level-2 section per field, so a
  later template step can turn every field into its own QA pair (e.g. "what
  does X return?" -> the 返回值 field). The raw fields stay in
  metadata["fields"] in their original order.
"""
from __future__ import annotations

import json
from typing import Any

from infuse.operators.parsers.document import ParsedDoc
from infuse.operators.parsers.sections import build_sections

TITLE_FIELDS = ("title", "name", "名称", "姓名", "名字", "函数", "函数名", "标题")
TEXT_FIELDS = ("text", "content", "body", "article", "正文", "内容", "文本")
SHORT_FIELD = 200  # chars: an id, a url, a date, a title; longer string fields make a record structured
LONG_TEXT = 200  # an unnamed field is the text only when it is at least this long...
DOMINANT = 3  # ...and this many times longer than any other field
TEXT_FORMAT = "txt"  # what a text record reads as: prose, like a .txt file


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


def _candidate(strings: dict[Any, str]) -> tuple[Any, bool]:
    """(the key of the likeliest text field, whether its name says it is one): the first field named like
    text, else the longest string."""
    named = [k for k in strings if str(k).strip().lower() in TEXT_FIELDS]
    if named:
        return named[0], True
    return max(strings, key=lambda k: len(strings[k])), False


def _dominates(text: str, longest_other: int, named: bool) -> bool:
    """Whether a field's text makes the record a text record: the others are short scalars beside it, and
    an unnamed field must also be long and several times longer than any other."""
    if longest_other > SHORT_FIELD or longest_other >= len(text):
        return False
    return named or (len(text) >= LONG_TEXT and len(text) >= DOMINANT * longest_other)


def text_field(fields: dict[str, Any]) -> Any:
    """The key of the record's one text-like field when it is a text record, else None."""
    if any(isinstance(v, (dict, list)) for v in fields.values()):
        return None  # nested values: structured
    strings = {k: field_text(v) for k, v in fields.items() if isinstance(v, str) and v.strip()}
    if not strings:
        return None
    key, named = _candidate(strings)
    longest_other = max((len(field_text(v)) for k, v in fields.items() if k != key), default=0)
    return key if _dominates(strings[key], longest_other, named) else None


def render_text_record(fields: dict[str, Any], key: Any, path: str, index: int, **metadata: Any) -> ParsedDoc:
    """A text record: its text field is the document; a title-like field (or path#index) is its title."""
    rest = {str(k): v for k, v in fields.items() if k != key}
    title, _ = record_title(rest, path, index)
    return ParsedDoc(title=title, text=field_text(fields[key]), format=TEXT_FORMAT,
                     metadata={"text_field": str(key), "record_fields": rest, "record_index": index, **metadata})


def render_record(fields: dict[str, Any], path: str, index: int, **metadata: Any) -> ParsedDoc:
    """A text record as its text (render_text_record); otherwise the title field becomes the level-1 heading (not repeated as a section); other fields are level 2."""
    key = text_field(fields)
    if key is not None:
        return render_text_record(fields, key, path, index, **metadata)
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
