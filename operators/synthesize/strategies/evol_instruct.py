"""evol_instruct (augmenter, off by default): evolve each question in depth (harder) and
breadth (a new aspect), then answer the evolved question from the same source chunks."""
from __future__ import annotations

from dataclasses import replace

from infuse.operators.synthesize.config import SynthConfig
from infuse.operators.synthesize.core import Answer, Context, Gen, Track, call, parse_text
from infuse.operators.synthesize.jsonrepair import ParseError
from infuse.operators.synthesize.schema import Draft, WorkItem
from infuse.operators.synthesize.strategy import Q_CHARS, Augmenter, Cost, Pricer

ANSWER_PROMPT = "rag_answer"


def _question(text: str | None) -> str:
    q = parse_text(text).splitlines()[0].strip().strip('"“”「」').strip()
    for prefix in ("新问题：", "改写后的问题：", "问题：", "New question:", "Rewritten question:", "Question:"):
        if q.startswith(prefix):
            q = q[len(prefix):].strip()
    if not q:
        raise ParseError("empty_output", "no question in the output")
    return q


def _context(ctx: Context, d: Draft) -> str:
    parts = []
    budget = ctx.cfg.rag.max_context_chars
    for n, cid in enumerate(d.source_chunk_ids, 1):
        if budget <= 0 or cid not in ctx.chunks:
            continue
        text = ctx.chunks[cid]["text"][:budget]
        budget -= len(text)
        parts.append(f"<Context id={n}>\n{text}\n</Context>")
    return "\n".join(parts)


def _modes(cfg: SynthConfig) -> list[str]:
    opts = cfg.evol_instruct
    return [m for m, on in (("depth", opts.depth), ("breadth", opts.breadth)) if on]


class EvolInstruct(Augmenter):
    name = "evol_instruct"
    order = 20

    def prompt_names(self, cfg: SynthConfig) -> list[str]:
        return [f"evol_{m}" for m in _modes(cfg)] + [ANSWER_PROMPT]

    def estimate(self, price: Pricer, base_samples: int) -> Cost:
        """Per sample and mode: one request evolves the question, one answers it from the source."""
        n = len(_modes(price.cfg)) * base_samples
        prompt = n * (price.system("evol_depth") + 2 * price.src + price.system(ANSWER_PROMPT))
        return Cost(2 * n, prompt, n * (price.gen(Q_CHARS) + price.gen(price.cfg.answer_target_chars)), n)

    def augment(self, drafts: list[Draft], item: WorkItem, ctx: Context, track: Track) -> Gen:
        modes = _modes(ctx.cfg)
        jobs = [(d, m) for d in drafts if d.source_chunk_ids for m in modes]
        if not jobs:
            return []
        prompts = {m: ctx.prompt(f"evol_{m}", item.lang) for m in modes}
        reqs = [ctx.request(prompts[m].messages(text=_context(ctx, d), question=d.question), max_tokens=256)
                for d, m in jobs]
        evolved = yield from call(track, reqs, _question, ctx.cfg.max_attempts)
        live = [(d, m, e) for (d, m), e in zip(jobs, evolved) if e.value is not None]
        ap = ctx.prompt(ANSWER_PROMPT, item.lang)
        reqs = [ctx.request(ap.messages(context=_context(ctx, d), question=e.value,
                                        target_chars=ctx.cfg.answer_target_chars)) for d, m, e in live]
        answers = yield from call(track, reqs, parse_text, ctx.cfg.max_attempts)
        return [_evolved(d, e, a, f"{d.prompt_version}+{prompts[m].version}+{ap.version}", m)
                for (d, m, e), a in zip(live, answers) if a.value is not None]


def _evolved(d: Draft, question: Answer, answer: Answer, version: str, mode: str) -> Draft:
    """The draft with the evolved question and its answer; usage is both calls'."""
    usage = {k: question.usage.get(k, 0) + answer.usage.get(k, 0) for k in ("prompt_tokens", "completion_tokens")}
    return replace(d, question=question.value, answer=answer.value, strategy=f"{d.strategy}+evol_{mode}",
                   prompt_version=version, generator=answer.model or d.generator, usage=usage, turns=None,
                   source_chunk_ids=list(d.source_chunk_ids))
