"""self_instruct: diverse instruction types (explain, compare, list, apply...) grounded in one chunk.

Off by default; when enabled it joins every format whose strategies include qa or rag."""
from __future__ import annotations

from infuse.operators.synthesize.config import SynthConfig
from infuse.operators.synthesize.core import Context, Gen, Track, call, prefill_for, split_usage
from infuse.operators.synthesize.jsonrepair import QA_JSON_SCHEMA, parse_qa
from infuse.operators.synthesize.schema import Draft, WorkItem
from infuse.operators.synthesize.strategy import Q_CHARS, Cost, Pricer, Strategy

PROMPT = "self_instruct"
# opens the output contract's JSON array, so a base model continues JSON (see ChatRequest.prefill)
PREFILL = '[{"instruction": "'


class SelfInstruct(Strategy):
    name = "self_instruct"
    order = 50
    prompts = (PROMPT,)

    def joins(self, cfg: SynthConfig, named: list[str]) -> bool:
        return cfg.self_instruct.enabled and any(s in ("qa", "rag") for s in named)

    def estimate(self, item: WorkItem, price: Pricer) -> Cost:
        k, t = price.cfg.self_instruct.n, price.cfg.answer_target_chars
        return price.one_call(PROMPT, price.gen(k * (t + Q_CHARS)), k)

    def run(self, item: WorkItem, ctx: Context, track: Track) -> Gen:
        chunk = ctx.chunk(item.chunk_id)
        cfg = ctx.cfg
        n = cfg.self_instruct.n
        prompt = ctx.prompt(PROMPT, item.lang)
        msgs = prompt.messages(text=chunk["text"], n=n, target_chars=cfg.answer_target_chars)
        req = ctx.request(msgs, QA_JSON_SCHEMA, prefill=prefill_for(prompt, PREFILL))
        [ans] = yield from call(track, [req], parse_qa, cfg.max_attempts)
        if ans.value is None:
            return []
        pairs = ans.value[:n]
        return [
            Draft(q, a, "self_instruct", prompt.version, chunk_id=chunk["chunk_id"], doc_id=chunk["doc_id"],
                  source_chunk_ids=[chunk["chunk_id"]], span_start=chunk["start"], span_end=chunk["end"],
                  generator=ans.model, usage=u, lang=item.lang, format=item.format)
            for (q, a), u in zip(pairs, split_usage(ans.usage, len(pairs)))
        ]
