"""record_template (no LLM): a structured record becomes one QA per field.

Design note 000: {"语法": ..., "返回值": ...} of function X -> "介绍一下C语言函数X的语法。"
-> the field's text. The answer is the exact document text of the field, and
the span points at it, so grounding always holds.
"""
from __future__ import annotations

from typing import Any

from infuse.operators.prompts import render
from infuse.operators.synth.core import Context, ItemFailure, Track, doc_metadata
from infuse.operators.synth.schema import Draft, WorkItem
from infuse.operators.synth.spans import find_value
from infuse.operators.parsers.records import field_text  # the exact text the parser wrote into the document

PROMPT = "record_template"


def record_fields(doc: dict[str, Any]) -> dict[str, Any]:
    fields = doc_metadata(doc).get("fields")
    return fields if isinstance(fields, dict) else {}




def record_title(doc: dict[str, Any], fields: dict[str, Any], title_field: str | None,
                 title_fields: list[str]) -> tuple[str, str | None]:
    """(title, the field it came from or None)."""
    names = [title_field] if title_field else list(title_fields)
    lowered = {str(k).strip().lower(): k for k in fields}
    for name in names:
        key = lowered.get(name.lower())
        if key is not None and field_text(fields[key]):
            return field_text(fields[key]), key
    return (doc.get("title") or "").strip(), None


def expected_count(doc: dict[str, Any], ctx_cfg: Any) -> int:
    opts = ctx_cfg.record
    fields = record_fields(doc)
    _, tkey = record_title(doc, fields, opts.title_field, opts.title_fields)
    return sum(1 for k, v in fields.items()
               if k != tkey and k not in opts.skip_fields and len(field_text(v)) >= opts.min_chars)


def make(item: WorkItem, ctx: Context, track: Track) -> list[Draft]:
    doc = ctx.doc(item.doc_id)
    opts = ctx.cfg.record
    fields = record_fields(doc)
    if not fields:
        raise ItemFailure("no_fields", "the document metadata has no record fields")
    title, tkey = record_title(doc, fields, opts.title_field, opts.title_fields)
    prompt = ctx.prompt(PROMPT, item.lang)
    text = doc["text"]
    out: list[Draft] = []
    cursor = 0
    field_sections = {}  # field name -> its body span (after the "## field" heading line)
    for sec in doc.get("sections") or []:
        hp = list(sec.get("heading_path") or [])
        if len(hp) >= 2 and hp[-1] in fields:
            start, end = int(sec["start"]), int(sec["end"])
            nl = text.find("\n", start, end)
            field_sections[hp[-1]] = (nl + 1 if nl >= 0 else end, end)
    for name, value in fields.items():
        if name == tkey or name in opts.skip_fields:
            continue
        value_text = field_text(value)
        if len(value_text) < opts.min_chars:
            continue
        template = opts.question_templates.get(name) or prompt.user_template
        question = render(template, title=title, field=name)
        sec = field_sections.get(name)
        if sec is not None:  # search the field's own section, so "1" is not found in a heading "## v1"
            body = find_value(text[sec[0]:sec[1]], value_text, 0)
            span = (sec[0] + body[0], sec[0] + body[1]) if body else None
        else:
            span = find_value(text, value_text, cursor)
        if span is not None:
            start, end = span
            answer = text[start:end]
            cursor = end
            chunk_ids = ctx.chunks_over(doc["doc_id"], start, end)
        else:  # the parser changed the value beyond whitespace: cite the whole record
            start, end, answer = 0, len(text), value_text
            chunk_ids = [c["chunk_id"] for c in ctx.doc_chunks(doc["doc_id"])]
        out.append(Draft(question, answer, "record_template", prompt.version,
                         chunk_id=chunk_ids[0] if chunk_ids else "", doc_id=doc["doc_id"],
                         source_chunk_ids=chunk_ids, span_start=start, span_end=end,
                         lang=item.lang, format=item.format))
    return out
