"""section_template (no LLM): "请介绍{heading path}" -> the section's body, exact source text.

A heading is answered with the whole body of its section, sub-sections
included, up to `section.max_chars` (default `answer_target_chars`, ~500) cut
at a paragraph or sentence end: the detailed answers the design notes ask for,
not one leaf line. The question is in the language of the answer's prose.
"""
from __future__ import annotations

import re
from typing import Any

from infuse.operators.synthesize.core import Context, ItemFailure, Track, text_lang
from infuse.operators.synthesize.config import SynthConfig
from infuse.operators.synthesize.schema import Draft, WorkItem
from infuse.operators.synthesize.spans import cut, strip_span
from infuse.operators.synthesize.strategy import DocumentStrategy, Template

PROMPT = "section_template"
_SETEXT = re.compile(r"^ {0,3}(=+|-+)\s*$")
_NUMBER = re.compile(r"^(\d+(\.\d+)*\.?|[IVXLC]+\.|第[一二三四五六七八九十百\d]+[章节部分条])\s*")


def _is_heading_line(line: str, heading: str) -> bool:
    """`# Usage`, `## Usage ##`, `1.2 Usage` (a PDF outline entry's line) or a setext title line."""
    core = line.strip().strip("#").strip()
    return core == heading or _NUMBER.sub("", core) == heading


def section_body(text: str, section: dict[str, Any], max_chars: int) -> tuple[int, int]:
    """The span of a section's body: without its own heading line, trimmed, cut to max_chars."""
    start, end = strip_span(text, int(section["start"]), int(section["end"]))
    heading = (section["heading_path"] or [""])[-1].strip()
    first_nl = text.find("\n", start, end)
    first_line = text[start: first_nl if first_nl >= 0 else end]
    if heading and _is_heading_line(first_line, heading):
        start = first_nl if first_nl >= 0 else end
        nl = text.find("\n", start + 1, end)
        if _SETEXT.match(text[start + 1: nl if nl >= 0 else end]):  # the ===/--- under a setext heading
            start = nl if nl >= 0 else end
        start, end = strip_span(text, start, end)
    return cut(text, start, end, max_chars)


def sections_with_body(doc: dict[str, Any], min_chars: int, max_chars: int,
                       subsections: bool = True) -> list[tuple[dict[str, Any], int, int]]:
    """(section, body start, body end) of every headed section with a body of at least min_chars."""
    out = []
    sections = list(doc.get("sections") or [])
    for n, s in enumerate(sections):
        if not s.get("heading_path") or not any(h.strip() for h in s["heading_path"]):
            continue
        if not subsections:  # stop at the first sub-heading
            child = next((c["start"] for c in sections[n + 1:] if s["start"] < c["start"] < s["end"]), None)
            if child is not None:
                s = {**s, "end": child}
        start, end = section_body(doc["text"], s, max_chars)
        end = _before_dangling_heading(doc["text"], start, end, [c["start"] for c in sections[n + 1:]])
        if end - start >= min_chars:
            out.append((s, start, end))
    return out


def _before_dangling_heading(text: str, start: int, end: int, later_starts: list[int]) -> int:
    """A cut that ends on a sub-section's heading line ("...\n\n## 步骤") ends before that heading."""
    for c in later_starts:
        if start < c < end:
            nl = text.find("\n", c, end)
            if nl < 0 or not text[nl:end].strip():
                return strip_span(text, start, c)[1]
    return end


def answer_cap(cfg: SynthConfig) -> int:
    """The longest answer: section.max_chars, else answer_target_chars."""
    return cfg.section.max_chars or cfg.answer_target_chars


class SectionTemplate(Template, DocumentStrategy):
    name = "section_template"
    order = 130
    prompts = (PROMPT,)

    def expected(self, doc: dict[str, Any], cfg: SynthConfig) -> int:
        return len(sections_with_body(doc, cfg.section.min_chars, answer_cap(cfg), cfg.section.subsections))

    def make(self, item: WorkItem, ctx: Context, track: Track) -> list[Draft]:
        doc = ctx.doc(item.doc_id)
        opts = ctx.cfg.section
        found = sections_with_body(doc, opts.min_chars, answer_cap(ctx.cfg), opts.subsections)
        if not found:
            raise ItemFailure("no_sections", "the document has no headed section with a body")
        out = []
        for s, start, end in found:
            heading = opts.separator.join(h.strip() for h in s["heading_path"] if h.strip())
            answer = doc["text"][start:end]
            lang = text_lang(ctx.cfg, answer, item.lang)
            prompt = ctx.prompt(PROMPT, lang)
            chunk_ids = ctx.chunks_over(doc["doc_id"], start, end)
            out.append(Draft(prompt.render(heading=heading), answer, "section_template", prompt.version,
                             chunk_id=ctx.chunk_at(doc["doc_id"], start), doc_id=doc["doc_id"],
                             source_chunk_ids=chunk_ids, span_start=start, span_end=end,
                             lang=lang, format=item.format))
        return out
