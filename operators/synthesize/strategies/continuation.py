"""continuation (no LLM), design note 000 on books: "根据{author}的风格，续写…" -> the next passage.

Books teach by generation more than by reading comprehension: the prompt shows
the tail of the text before a chunk, the answer is the chunk itself (exact text).
"""
from __future__ import annotations

import re
from typing import Any

from infuse.operators.prompts import render
from infuse.operators.synthesize.core import Context, ItemFailure, Track, doc_metadata, text_lang
from infuse.operators.synthesize.config import SynthConfig
from infuse.operators.synthesize.schema import Draft, WorkItem
from infuse.operators.synthesize.strategy import DocSource, Strategy, Template
from infuse.operators.synthesize.spans import strip_span

PROMPT = "continuation"
AUTHOR_KEYS = ("author", "authors", "作者", "creator")
_BOUNDARY = re.compile(r"[。！？!?\n]|\.\s")


def doc_author(doc: dict[str, Any], fallback: str | None) -> str:
    """The document's author from its metadata (a list joined with 、), else the fallback."""
    meta = doc_metadata(doc)
    for k in AUTHOR_KEYS:
        v = meta.get(k)
        if isinstance(v, list):
            v = "、".join(str(x) for x in v if x)
        if isinstance(v, str) and v.strip():
            return v.strip()
    return (fallback or "").strip()


def previous_span(text: str, target_start: int, max_chars: int) -> tuple[int, int]:
    """Up to max_chars of text before target_start, starting after a sentence boundary when one is near."""
    start = max(0, target_start - max_chars)
    if start > 0:
        m = _BOUNDARY.search(text, start, min(target_start, start + max_chars // 3))
        if m:
            start = m.end()
    return strip_span(text, start, target_start)


class Continuation(Template, Strategy):
    name = "continuation"
    order = 140
    prompts = (PROMPT,)

    def plan(self, cfg: SynthConfig, source: DocSource) -> list[WorkItem]:
        """One item per chunk that has text before it (any kind of chunk)."""
        return [self.item(cfg, c["chunk_id"], source.doc_id, text_lang(cfg, c["text"], source.lang), source.format,
                          text_chars=len(c["text"]), expected=1)
                for c in source.chunks if c["start"] > 0]

    def make(self, item: WorkItem, ctx: Context, track: Track) -> list[Draft]:
        chunk = ctx.chunk(item.chunk_id)
        doc = ctx.doc(chunk["doc_id"])
        text = doc["text"]
        p_start, p_end = previous_span(text, chunk["start"], ctx.cfg.continuation.previous_chars)
        if p_end <= p_start:
            raise ItemFailure("no_previous_text", "nothing precedes this chunk to continue from")
        prompt = ctx.prompt(PROMPT, item.lang)
        author = doc_author(doc, ctx.cfg.continuation.author)
        template = prompt.user_template if author else prompt.extra.get("no_author", prompt.user_template)
        question = render(template, author=author, previous=text[p_start:p_end])
        start, end = strip_span(text, chunk["start"], chunk["end"])
        return [Draft(question, text[start:end], "continuation", prompt.version, chunk_id=chunk["chunk_id"],
                      doc_id=doc["doc_id"], source_chunk_ids=[chunk["chunk_id"]], span_start=start, span_end=end,
                      lang=item.lang, format=item.format)]
