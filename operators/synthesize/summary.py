"""summary (knowledge augmentation): a detailed summary of each section, answered by the LLM.

A fact restated in new words is learned better than one seen once (Ovadia et
al.; EntiGraph). The sections summarised are the largest that fit
`summary.max_source_chars`: a section that fits is summarised whole, with its
sub-sections; a larger one by its sub-sections. A document without headings
is summarised in windows of that size. The summary is also a passage that cpt
can take as plain text (`cpt_text`).
"""
from __future__ import annotations

from typing import Any

from infuse.operators.prompts import render
from infuse.operators.synthesize.core import Context, Gen, ItemFailure, Track, call, parse_text, text_lang
from infuse.operators.synthesize.schema import Draft, WorkItem
from infuse.operators.synthesize.spans import cut, strip_span

PROMPT = "summary"


def units(doc: dict[str, Any], cfg: Any) -> list[tuple[str, int, int]]:
    """(heading, start, end) of each span to summarise, in document order."""
    opts = cfg.summary
    text = doc.get("text") or ""
    sections = [s for s in doc.get("sections") or [] if any(h.strip() for h in s.get("heading_path") or [])]
    out: list[tuple[str, int, int]] = []
    if not sections:
        title = (doc.get("title") or "").strip() or (doc.get("path") or "").rsplit("/", 1)[-1]
        start = 0
        while start < len(text):
            s, e = cut(text, *strip_span(text, start, len(text)), opts.max_source_chars)
            if e <= s:
                break
            if e - s >= opts.min_chars:
                out.append((title, s, e))
            start = e
        return out
    covered = -1
    for n, sec in enumerate(sections):
        start, end = strip_span(text, int(sec["start"]), int(sec["end"]))
        if start < covered:
            continue  # inside a section summarised whole
        has_child = any(start < int(c["start"]) < end for c in sections[n + 1: n + 2])
        if end - start > opts.max_source_chars and has_child:
            continue  # too large: its sub-sections are summarised instead
        start, end = cut(text, start, end, opts.max_source_chars)
        if end - start >= opts.min_chars:
            heading = cfg.section.separator.join(h.strip() for h in sec["heading_path"] if h.strip())
            out.append((heading, start, end))
            covered = int(sec["end"])
    return out


def run(item: WorkItem, ctx: Context, track: Track) -> Gen:
    doc = ctx.doc(item.doc_id)
    cfg = ctx.cfg
    found = units(doc, cfg)
    if not found:
        raise ItemFailure("no_sections", f"no section of at least {cfg.summary.min_chars} characters to summarise")
    jobs = []
    for heading, start, end in found:
        source = doc["text"][start:end]
        lang = text_lang(cfg, source, item.lang)
        jobs.append((heading, start, end, lang, ctx.prompt(PROMPT, lang)))
    reqs = [ctx.request(p.messages(text=doc["text"][s:e], target_chars=cfg.answer_target_chars))
            for _, s, e, _, p in jobs]
    answers = yield from call(track, reqs, parse_text, cfg.max_attempts)
    out = []
    for (heading, start, end, lang, prompt), ans in zip(jobs, answers):
        if ans.value is None:
            continue
        chunk_ids = ctx.chunks_over(doc["doc_id"], start, end)
        question = prompt.extra.get("question", "{{heading}}")
        out.append(Draft(render(question, heading=heading), ans.value, "summary", prompt.version,
                         chunk_id=chunk_ids[0] if chunk_ids else "", doc_id=doc["doc_id"],
                         source_chunk_ids=chunk_ids, span_start=start, span_end=end, generator=ans.model,
                         usage=ans.usage, lang=lang, format=item.format, cpt_text=True,
                         meta={"topic": heading}))
    return out
