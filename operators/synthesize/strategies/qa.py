"""qa: design note 001's QA_PAIRS prompt on one chunk -> up to N detailed QA pairs."""
from __future__ import annotations

from infuse.operators.synthesize.core import Context, Gen, Track, call, prefill_for, split_usage
from infuse.operators.synthesize.jsonrepair import QA_JSON_SCHEMA, parse_qa
from infuse.operators.synthesize.schema import Draft, WorkItem
from infuse.operators.synthesize.strategy import Q_CHARS, Cost, Pricer, Strategy

PROMPT = "qa_pairs"
# opens the output contract's JSON array, so a base model continues JSON (see ChatRequest.prefill)
PREFILL = '[{"question": "'


class QA(Strategy):
    name = "qa"
    order = 10
    prompts = (PROMPT,)

    def estimate(self, item: WorkItem, price: Pricer) -> Cost:
        n, t = price.cfg.questions_per_chunk, price.cfg.answer_target_chars
        return price.one_call(PROMPT, price.gen(n * (t + Q_CHARS)), n)

    def run(self, item: WorkItem, ctx: Context, track: Track) -> Gen:
        chunk = ctx.chunk(item.chunk_id)
        cfg = ctx.cfg
        prompt = ctx.prompt(PROMPT, item.lang)
        msgs = prompt.messages(text=chunk["text"], n=cfg.questions_per_chunk, target_chars=cfg.answer_target_chars)
        req = ctx.request(msgs, QA_JSON_SCHEMA, prefill=prefill_for(prompt, PREFILL))
        [ans] = yield from call(track, [req], parse_qa, cfg.max_attempts)
        if ans.value is None:
            return []
        pairs = ans.value[: cfg.questions_per_chunk]
        return [
            Draft(q, a, "qa", prompt.version, chunk_id=chunk["chunk_id"], doc_id=chunk["doc_id"],
                  source_chunk_ids=[chunk["chunk_id"]], span_start=chunk["start"], span_end=chunk["end"],
                  generator=ans.model, usage=u, lang=item.lang, format=item.format)
            for (q, a), u in zip(pairs, split_usage(ans.usage, len(pairs)))
        ]
