"""paraphrase (augmenter, on by default): k rewordings of each QA row, question and answer.

Ovadia et al. 2023 (Fine-tuning or retrieval?): a fact seen in several phrasings
is learned far better than one seen once. Runs inside the item, on its rows.
"""
from __future__ import annotations

from dataclasses import replace

from infuse.operators.synthesize.config import SynthConfig
from infuse.operators.synthesize.core import Context, Gen, Track, call, prefill_for, split_usage
from infuse.operators.synthesize.jsonrepair import QA_JSON_SCHEMA, parse_qa
from infuse.operators.synthesize.schema import Draft, WorkItem
from infuse.operators.synthesize.strategy import Q_CHARS, Augmenter, Cost, Pricer

PROMPT = "paraphrase"
PREFILL = '[{"question": "'  # opens the output contract's JSON array (see ChatRequest.prefill)


class Paraphrase(Augmenter):
    name = "paraphrase"
    order = 10

    def prompt_names(self, cfg: SynthConfig) -> list[str]:
        return [PROMPT]

    def estimate(self, price: Pricer, base_samples: int) -> Cost:
        """One request per sample, answered with k rewordings."""
        t = price.cfg.answer_target_chars + Q_CHARS
        k = price.cfg.paraphrase.k
        return Cost(base_samples, base_samples * (price.system(PROMPT) + price.gen(t)),
                    base_samples * price.gen(k * t), base_samples * k)

    def augment(self, drafts: list[Draft], item: WorkItem, ctx: Context, track: Track) -> Gen:
        opts = ctx.cfg.paraphrase
        prompt = ctx.prompt(PROMPT, item.lang)
        prefill = prefill_for(prompt, PREFILL)
        reqs = [ctx.request(prompt.messages(question=d.question, answer=d.answer, k=opts.k), QA_JSON_SCHEMA,
                            prefill=prefill)
                for d in drafts]
        answers = yield from call(track, reqs, parse_qa, ctx.cfg.max_attempts)
        out: list[Draft] = []
        for d, ans in zip(drafts, answers):
            if ans.value is None:
                continue
            pairs = ans.value[: opts.k]
            for (q, a), u in zip(pairs, split_usage(ans.usage, len(pairs))):
                out.append(replace(d, question=q, answer=a if opts.answers else d.answer,
                                   strategy=f"{d.strategy}+paraphrase",
                                   prompt_version=f"{d.prompt_version}+{prompt.version}",
                                   generator=ans.model or d.generator, usage=u, turns=None,
                                   source_chunk_ids=list(d.source_chunk_ids)))
        return out
