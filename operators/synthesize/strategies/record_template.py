"""record_template (no LLM): a structured record becomes one QA per field, and one about the whole record.

Design note 000: {"语法": ..., "返回值": ...} of function X -> "介绍一下C语言函数X的语法。"
-> the field's text. The answer is the exact document text of the field, and
the span points at it, so grounding always holds. Each question is in the
language of its field's text (a CSV with Chinese columns asks in Chinese), with
the field name as written. Besides, "介绍一下X。" is answered with every field of
the record (`introduce`): the detailed answer the design notes ask for.
"""
from __future__ import annotations

from typing import Any

from infuse.operators.parsers.records import field_text  # the exact text the parser wrote into the document
from infuse.operators.prompts import render
from infuse.operators.synthesize.config import SynthConfig
from infuse.operators.synthesize.core import Context, ItemFailure, Track, doc_metadata, text_lang
from infuse.operators.synthesize.schema import Draft, WorkItem
from infuse.operators.synthesize.spans import find_value
from infuse.operators.synthesize.strategy import DocumentStrategy, Template

PROMPT = "record_template"


def record_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """The record's fields, as the parser kept them in the document metadata ({} when it is no record)."""
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


def _fields(doc: dict[str, Any], opts: Any) -> tuple[str, list[tuple[str, str]]]:
    """(title, [(field, its text)]) of the fields that get a question, in record order."""
    fields = record_fields(doc)
    title, tkey = record_title(doc, fields, opts.title_field, opts.title_fields)
    return title, [(k, field_text(v)) for k, v in fields.items()
                   if k != tkey and k not in opts.skip_fields and len(field_text(v)) >= opts.min_chars]


def field_lang(cfg: Any, name: str, value: str, doc_lang: str) -> str:
    """A field's question is in the language of its text: the value's prose, else the field name's, else
    the document's ("meaning" -> "Success" asks in English, "处理建议" -> "无需处理" in Chinese)."""
    return text_lang(cfg, value, text_lang(cfg, name, doc_lang))


def _field_sections(doc: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Field name -> its body span (after the "## field" heading line), for records written with headings."""
    text = doc["text"]
    out = {}
    for sec in doc.get("sections") or []:
        hp = list(sec.get("heading_path") or [])
        if len(hp) >= 2:
            start, end = int(sec["start"]), int(sec["end"])
            nl = text.find("\n", start, end)
            out[hp[-1]] = (nl + 1 if nl >= 0 else end, end)
    return out


class _Spans:
    """Finds each field's text in the document, in record order."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.text = doc["text"]
        self.sections = _field_sections(doc)
        self.cursor = 0

    def find(self, name: str, value_text: str) -> tuple[int, int] | None:
        sec = self.sections.get(name)
        if sec is not None:  # search the field's own section, so "1" is not found in a heading "## v1"
            body = find_value(self.text[sec[0]:sec[1]], value_text, 0)
            span = (sec[0] + body[0], sec[0] + body[1]) if body else None
        else:
            span = find_value(self.text, value_text, self.cursor)
        if span is not None:
            self.cursor = span[1]
        return span


def _answer(ctx: Context, doc: dict[str, Any], span: tuple[int, int] | None,
            value_text: str) -> tuple[int, int, str, list[str]]:
    """(start, end, answer, chunk ids): the field's exact text, or the whole record cited when the parser
    changed the value beyond whitespace."""
    if span is None:
        return 0, len(doc["text"]), value_text, [c["chunk_id"] for c in ctx.doc_chunks(doc["doc_id"])]
    start, end = span
    return start, end, doc["text"][start:end], ctx.chunks_over(doc["doc_id"], start, end)


class RecordTemplate(Template, DocumentStrategy):
    name = "record_template"
    order = 120
    prompts = (PROMPT,)

    def expected(self, doc: dict[str, Any], cfg: SynthConfig) -> int:
        _, todo = _fields(doc, cfg.record)
        return len(todo) + (1 if cfg.record.introduce and len(todo) >= 2 else 0)

    def make(self, item: WorkItem, ctx: Context, track: Track) -> list[Draft]:
        doc = ctx.doc(item.doc_id)
        opts = ctx.cfg.record
        if not record_fields(doc):
            raise ItemFailure("no_fields", "the document metadata has no record fields")
        title, todo = _fields(doc, opts)
        finder = _Spans(doc)
        out: list[Draft] = []
        spans: list[tuple[int, int]] = []
        for name, value_text in todo:
            lang = field_lang(ctx.cfg, name, value_text, item.lang)
            prompt = ctx.prompt(PROMPT, lang)
            question = render(opts.question_templates.get(name) or prompt.user_template, title=title, field=name)
            start, end, answer, chunk_ids = _answer(ctx, doc, finder.find(name, value_text), value_text)
            spans.append((start, end))
            out.append(Draft(question, answer, "record_template", prompt.version,
                             chunk_id=chunk_ids[0] if chunk_ids else "", doc_id=doc["doc_id"],
                             source_chunk_ids=chunk_ids, span_start=start, span_end=end,
                             lang=lang, format=item.format))
        if opts.introduce and len(out) >= 2:
            out.append(_introduce(item, ctx, doc, title, [(n, d.answer) for (n, _), d in zip(todo, out)], spans))
        return out


def _introduce(item: WorkItem, ctx: Context, doc: dict[str, Any], title: str, fields: list[tuple[str, str]],
               spans: list[tuple[int, int]]) -> Draft:
    """One sample that answers "介绍一下X。" with every field of the record, each as written."""
    lang = text_lang(ctx.cfg, "\n".join(f"{n}\n{v}" for n, v in fields), item.lang)
    prompt = ctx.prompt(PROMPT, lang)
    line = prompt.extra.get("line", "{{field}}: {{value}}")
    answer = "\n".join(render(line, field=n, value=v) for n, v in fields)
    template = ctx.cfg.record.introduce_template or prompt.extra.get("introduce") or "{{title}}"
    start, end = min(s for s, _ in spans), max(e for _, e in spans)
    chunk_ids = ctx.chunks_over(doc["doc_id"], start, end)
    return Draft(render(template, title=title), answer, "record_template", prompt.version,
                 chunk_id=chunk_ids[0] if chunk_ids else "", doc_id=doc["doc_id"], source_chunk_ids=chunk_ids,
                 span_start=start, span_end=end, lang=lang, format=item.format, meta={"introduce": True})
