"""dialogue: a 2-4-turn conversation grounded in one chunk, follow-up questions referring back.

One request asks for the whole conversation as a JSON array of turns (the
QA_PAIRS shape, in order), so the follow-ups can lean on earlier answers. The
sample is multi-turn `messages`; qa_filter checks every assistant turn like a
single answer and cuts the conversation before a turn that fails.
"""
from __future__ import annotations

from typing import Callable

from infuse.operators.synthesize.core import Context, Gen, Track, call, prefill_for
from infuse.operators.synthesize.jsonrepair import QA_JSON_SCHEMA, ParseError, parse_qa
from infuse.operators.synthesize.schema import Draft, WorkItem
from infuse.operators.synthesize.strategy import Q_CHARS, Cost, Pricer, Strategy

PROMPT = "dialogue"
PREFILL = '[{"question": "'  # opens the output contract's JSON array (see ChatRequest.prefill)


def parser(min_turns: int) -> Callable[[str | None], list[tuple[str, str]]]:
    """parse_qa that also wants at least min_turns turns."""
    def parse(text: str | None) -> list[tuple[str, str]]:
        turns = parse_qa(text)
        if len(turns) < min_turns:  # one QA pair is not a conversation: a retry may write one
            raise ParseError("schema_invalid", f"a dialogue needs at least {min_turns} turns, got {len(turns)}")
        return turns
    return parse


class Dialogue(Strategy):
    name = "dialogue"
    order = 60
    prompts = (PROMPT,)

    def estimate(self, item: WorkItem, price: Pricer) -> Cost:
        turns, t = price.cfg.dialogue.max_turns, price.cfg.answer_target_chars
        return price.one_call(PROMPT, price.gen(turns * (t + Q_CHARS)), 1)

    def run(self, item: WorkItem, ctx: Context, track: Track) -> Gen:
        chunk = ctx.chunk(item.chunk_id)
        cfg = ctx.cfg
        opts = cfg.dialogue
        prompt = ctx.prompt(PROMPT, item.lang)
        msgs = prompt.messages(text=chunk["text"], min_turns=opts.min_turns, max_turns=opts.max_turns,
                               target_chars=cfg.answer_target_chars)
        req = ctx.request(msgs, QA_JSON_SCHEMA, prefill=prefill_for(prompt, PREFILL))
        [ans] = yield from call(track, [req], parser(opts.min_turns), cfg.max_attempts)
        if ans.value is None:
            return []
        turns = ans.value[: opts.max_turns]
        messages = []
        for q, a in turns:
            messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        return [Draft(turns[0][0], turns[0][1], "dialogue", prompt.version, chunk_id=chunk["chunk_id"],
                      doc_id=chunk["doc_id"], source_chunk_ids=[chunk["chunk_id"]], span_start=chunk["start"],
                      span_end=chunk["end"], generator=ans.model, usage=ans.usage, lang=item.lang, format=item.format,
                      turns=messages, meta={"turns": len(turns)})]
