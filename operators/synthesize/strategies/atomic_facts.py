"""atomic_facts (knowledge augmentation): the facts a chunk states, one per line, by the LLM.

Each fact is a sentence that stands alone (its subject named), so the list
restates the chunk as separate, checkable claims. The sample asks for the
facts about the chunk's topic; its answer is the list, one fact per line.
"""
from __future__ import annotations

import re

from infuse.operators.prompts import render
from infuse.operators.synthesize.core import Context, Gen, Track, call, clean_text
from infuse.operators.synthesize.jsonrepair import ParseError
from infuse.operators.synthesize.schema import Draft, WorkItem
from infuse.operators.synthesize.strategy import Cost, Pricer, Strategy

PROMPT = "atomic_facts"
_BULLET = re.compile(r"^\s*(?:[-*•·]|\d+[.)、]|[（(]\d+[)）])\s*")


def parse_facts(text: str | None, max_facts: int = 100) -> list[str]:
    """The reply's lines as facts: bullets and numbers dropped, blank and repeated lines skipped."""
    seen: set[str] = set()
    facts = []
    for line in clean_text(text).splitlines():
        fact = _BULLET.sub("", line).strip()
        if len(fact) < 4 or fact in seen or fact.endswith((":", "：")):
            continue
        seen.add(fact)
        facts.append(fact)
    if not facts:
        raise ParseError("empty_output", "no fact lines in the output")
    return facts[:max_facts]


class AtomicFacts(Strategy):
    name = "atomic_facts"
    order = 80
    prompts = (PROMPT,)

    def estimate(self, item: WorkItem, price: Pricer) -> Cost:
        return price.one_call(PROMPT, min(price.src, price.gen(price.cfg.answer_target_chars * 2)), 1)

    def run(self, item: WorkItem, ctx: Context, track: Track) -> Gen:
        chunk = ctx.chunk(item.chunk_id)
        cfg = ctx.cfg
        n = cfg.atomic_facts.max_facts
        prompt = ctx.prompt(PROMPT, item.lang)
        req = ctx.request(prompt.messages(text=chunk["text"], max_facts=n))
        [ans] = yield from call(track, [req], lambda t: parse_facts(t, n), cfg.max_attempts)
        if ans.value is None:
            return []
        question = render(prompt.extra.get("question", "{{topic}}"), topic=ctx.topic(chunk))
        return [Draft(question, "\n".join(ans.value), "atomic_facts", prompt.version, chunk_id=chunk["chunk_id"],
                      doc_id=chunk["doc_id"], source_chunk_ids=[chunk["chunk_id"]], span_start=chunk["start"],
                      span_end=chunk["end"], generator=ans.model, usage=ans.usage, lang=item.lang, format=item.format,
                      meta={"facts": len(ans.value), "topic": ctx.topic(chunk)})]
