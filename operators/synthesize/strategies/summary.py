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
from infuse.operators.synthesize.config import SynthConfig
from infuse.operators.synthesize.core import Answer, Context, Gen, ItemFailure, Track, call, parse_text, text_lang
from infuse.operators.synthesize.schema import Draft, WorkItem
from infuse.operators.synthesize.spans import cut, strip_span
from infuse.operators.synthesize.strategy import Cost, DocumentStrategy, Pricer

PROMPT = "summary"


def _windows(text: str, title: str, max_chars: int, min_chars: int) -> list[tuple[str, int, int]]:
    """A document without headings: consecutive windows of up to max_chars, cut at paragraph or sentence ends."""
    out: list[tuple[str, int, int]] = []
    start = 0
    while start < len(text):
        s, e = cut(text, *strip_span(text, start, len(text)), max_chars)
        if e <= s:
            break
        if e - s >= min_chars:
            out.append((title, s, e))
        start = e
    return out


def _sections(text: str, sections: list[dict[str, Any]], cfg: SynthConfig) -> list[tuple[str, int, int]]:
    """The largest sections that fit max_source_chars, each summarised once (a section summarised whole
    covers its sub-sections; one too large with a sub-section leaves the work to its sub-sections)."""
    opts = cfg.summary
    out: list[tuple[str, int, int]] = []
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


def units(doc: dict[str, Any], cfg: SynthConfig) -> list[tuple[str, int, int]]:
    """(heading, start, end) of each span to summarise, in document order."""
    text = doc.get("text") or ""
    sections = [s for s in doc.get("sections") or [] if any(h.strip() for h in s.get("heading_path") or [])]
    if sections:
        return _sections(text, sections, cfg)
    title = (doc.get("title") or "").strip() or (doc.get("path") or "").rsplit("/", 1)[-1]
    return _windows(text, title, cfg.summary.max_source_chars, cfg.summary.min_chars)


class Summary(DocumentStrategy):
    name = "summary"
    order = 70
    prompts = (PROMPT,)

    def expected(self, doc: dict[str, Any], cfg: SynthConfig) -> int:
        return len(units(doc, cfg))

    def estimate(self, item: WorkItem, price: Pricer) -> Cost:
        req = max(1, item.expected_samples)  # one request per section; text_chars is the whole document
        return Cost(req, req * price.system(PROMPT) + price.src, req * price.gen(price.cfg.answer_target_chars), req)

    def run(self, item: WorkItem, ctx: Context, track: Track) -> Gen:
        doc = ctx.doc(item.doc_id)
        cfg = ctx.cfg
        found = units(doc, cfg)
        if not found:
            raise ItemFailure("no_sections", f"no section of at least {cfg.summary.min_chars} characters to summarise")
        jobs = []
        for heading, start, end in found:
            lang = text_lang(cfg, doc["text"][start:end], item.lang)
            jobs.append((heading, start, end, lang, ctx.prompt(PROMPT, lang)))
        reqs = [ctx.request(p.messages(text=doc["text"][s:e], target_chars=cfg.answer_target_chars))
                for _, s, e, _, p in jobs]
        answers = yield from call(track, reqs, parse_text, cfg.max_attempts)
        return [_draft(ctx, item, doc, job, ans) for job, ans in zip(jobs, answers) if ans.value is not None]


def _draft(ctx: Context, item: WorkItem, doc: dict[str, Any], job: tuple[Any, ...], ans: Answer) -> Draft:
    heading, start, end, lang, prompt = job
    chunk_ids = ctx.chunks_over(doc["doc_id"], start, end)
    question = prompt.extra.get("question", "{{heading}}")
    return Draft(render(question, heading=heading), ans.value, "summary", prompt.version,
                 chunk_id=chunk_ids[0] if chunk_ids else "", doc_id=doc["doc_id"], source_chunk_ids=chunk_ids,
                 span_start=start, span_end=end, generator=ans.model, usage=ans.usage, lang=lang,
                 format=item.format, cpt_text=True, meta={"topic": heading})
