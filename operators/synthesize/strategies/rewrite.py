"""rewrite (knowledge augmentation): k rewordings of a chunk, one request each, by the LLM.

The research on teaching facts by fine-tuning (EntiGraph; Ovadia et al.)
agrees that facts are learned from many restatements. Each rewording is a
"tell me about X" sample (X: the chunk's heading path or document title) and a
passage that cpt can take as plain text (`cpt_text`). Each request asks for a
different style (the prompt's `styles`, cycled) and has its own seed, so the
k rewordings differ.
"""
from __future__ import annotations

from infuse.operators.prompts import render
from infuse.operators.synthesize.core import Context, Gen, Track, call, parse_text
from infuse.operators.synthesize.schema import Draft, WorkItem
from infuse.operators.synthesize.strategy import Cost, Pricer, Strategy

PROMPT = "rewrite"


class Rewrite(Strategy):
    name = "rewrite"
    order = 90
    prompts = (PROMPT,)

    def estimate(self, item: WorkItem, price: Pricer) -> Cost:
        k = price.cfg.rewrite.k
        return Cost(k, k * (price.system(PROMPT) + price.src), k * price.src, k)

    def run(self, item: WorkItem, ctx: Context, track: Track) -> Gen:
        chunk = ctx.chunk(item.chunk_id)
        cfg = ctx.cfg
        prompt = ctx.prompt(PROMPT, item.lang)
        styles = list(prompt.extra.get("styles") or [""])
        questions = list(prompt.extra.get("questions") or ["{{topic}}"])
        k = cfg.rewrite.k
        reqs = [ctx.request(prompt.messages(text=chunk["text"], style=styles[i % len(styles)]),
                            max_tokens=max(64, min(cfg.max_tokens, 2 * len(chunk["text"]))))
                for i in range(k)]
        answers = yield from call(track, reqs, parse_text, cfg.max_attempts)
        topic = ctx.topic(chunk)
        return [Draft(render(questions[i % len(questions)], topic=topic), ans.value, "rewrite", prompt.version,
                      chunk_id=chunk["chunk_id"], doc_id=chunk["doc_id"], source_chunk_ids=[chunk["chunk_id"]],
                      span_start=chunk["start"], span_end=chunk["end"], generator=ans.model, usage=ans.usage,
                      lang=item.lang, format=item.format, cpt_text=True, meta={"rewording": i + 1, "topic": topic})
                for i, ans in enumerate(answers) if ans.value is not None]
