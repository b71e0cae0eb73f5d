"""rag: questions from one chunk, answered with the top-k chunks of the whole corpus.

Design note 001: "通过生成的问题，利用带有本地知识的rag大模型构建问答对". The
answer may draw on several chunks, so every chunk put in the context is listed
in source_chunk_ids. The chunk the questions came from is always in the context.
"""
from __future__ import annotations

from typing import Any

from infuse.operators.prompts import Prompt
from infuse.operators.synthesize.core import (Answer, Context, Gen, ItemFailure, Track, call, parse_text, prefill_for,
                                              split_usage)
from infuse.operators.synthesize.jsonrepair import QUESTIONS_JSON_SCHEMA, parse_questions
from infuse.operators.synthesize.rag import corpus_index, default_embed_fn, normalise
from infuse.operators.synthesize.schema import Draft, WorkItem
from infuse.operators.synthesize.strategy import Q_CHARS, Cost, Pricer, Strategy

Q_PROMPT = "rag_questions"
A_PROMPT = "rag_answer"
Q_PREFILL = '["'  # opens the question prompt's JSON array of strings (see ChatRequest.prefill)


def context_block(ctx: Context, ids: list[str]) -> str:
    """The chunks as numbered <Context> blocks, cut to rag.max_context_chars in all."""
    budget = ctx.cfg.rag.max_context_chars
    parts = []
    for n, cid in enumerate(ids, 1):
        text = ctx.chunk(cid)["text"]
        if budget <= 0:
            break
        text = text[:budget]
        budget -= len(text)
        parts.append(f"<Context id={n}>\n{text}\n</Context>")
    return "\n".join(parts)


def ask_questions(ctx: Context, track: Track, qp: Prompt, chunk: dict[str, Any], n: int) -> Gen:
    """Up to n questions the chunk answers; returns (the questions, the Answer they came in)."""
    qreq = ctx.request(qp.messages(text=chunk["text"], n=n), QUESTIONS_JSON_SCHEMA, prefill=prefill_for(qp, Q_PREFILL))
    [qans] = yield from call(track, [qreq], parse_questions, ctx.cfg.max_attempts)
    return (qans.value[:n] if qans.value is not None else []), qans


def _retrieve(ctx: Context, chunk: dict[str, Any], questions: list[str]) -> list[list[str]]:
    """Per question: the chunk itself, then its top-k other chunks of the corpus."""
    index = corpus_index(ctx)
    fn = ctx.embed_fn or default_embed_fn()
    try:
        qvecs = normalise(fn(questions))
    except Exception as e:
        raise ItemFailure("embed_error", f"could not embed the questions: {e}") from e
    hits = index.top_k(qvecs, ctx.cfg.rag.top_k, exclude=chunk["chunk_id"])
    return [[chunk["chunk_id"]] + [cid for cid, _ in h if cid in ctx.chunks] for h in hits]


def joint_usage(question: dict[str, int], answer: Answer) -> dict[str, int]:
    """A sample's usage: its share of the question call, plus its own answer call."""
    return {k: question.get(k, 0) + answer.usage.get(k, 0) for k in question}


class Rag(Strategy):
    name = "rag"
    order = 20
    prompts = (Q_PROMPT, A_PROMPT)
    retrieves = True

    def estimate(self, item: WorkItem, price: Pricer) -> Cost:
        cfg, gen, src = price.cfg, price.gen, price.src
        n, t = cfg.questions_per_chunk, cfg.answer_target_chars
        ctx_tokens = min(gen(cfg.rag.max_context_chars), src * (1 + cfg.rag.top_k))
        prompt = price.system(Q_PROMPT) + src + n * (price.system(A_PROMPT) + ctx_tokens + gen(Q_CHARS))
        return Cost(1 + n, prompt, gen(n * Q_CHARS) + n * gen(t), n)

    def run(self, item: WorkItem, ctx: Context, track: Track) -> Gen:
        chunk = ctx.chunk(item.chunk_id)
        cfg = ctx.cfg
        qp, ap = ctx.prompt(Q_PROMPT, item.lang), ctx.prompt(A_PROMPT, item.lang)
        questions, qans = yield from ask_questions(ctx, track, qp, chunk, cfg.questions_per_chunk)
        if qans.value is None:
            return []
        used = _retrieve(ctx, chunk, questions)
        reqs = [ctx.request(ap.messages(context=context_block(ctx, ids), question=q,
                                        target_chars=cfg.answer_target_chars))
                for q, ids in zip(questions, used)]
        answers = yield from call(track, reqs, parse_text, cfg.max_attempts)
        version = f"{qp.version}+{ap.version}"
        return [Draft(q, ans.value, "rag", version, chunk_id=chunk["chunk_id"], doc_id=chunk["doc_id"],
                      source_chunk_ids=ids, span_start=chunk["start"], span_end=chunk["end"], generator=ans.model,
                      usage=joint_usage(qu, ans), lang=item.lang, format=item.format)
                for q, ids, ans, qu in zip(questions, used, answers, split_usage(qans.usage, len(questions)))
                if ans.value is not None]
