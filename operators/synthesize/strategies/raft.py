"""raft: RAFT-style answers (Zhang et al. 2024, Retrieval-Augmented Fine-Tuning).

The user turn shows a question with its source chunk among distractor chunks
of OTHER documents (the nearest by MiniLM embedding, in the same language when
there are enough), each labelled [k]; the answer names the document that holds
the answer, quotes it and answers from it alone. The model learns to find its
facts among noise, as it will in a RAG prompt. qa_filter checks the answer is
grounded in the true source and cites it (and no distractor): `wrong_citation`.

Provenance: `source_chunk_ids` is the true source only (grounding is against
it); `meta` keeps the question, the label to cite and the distractor chunks.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from infuse.operators.common.base import stable_hash
from infuse.operators.prompts import Prompt, render
from infuse.operators.synthesize.core import Context, Gen, ItemFailure, Track, call, parse_text, split_usage, text_lang
from infuse.operators.synthesize.rag import corpus_index, default_embed_fn, normalise
from infuse.operators.synthesize.schema import Draft, WorkItem
from infuse.operators.synthesize.strategies.rag import ask_questions, joint_usage
from infuse.operators.synthesize.strategy import Q_CHARS, Cost, Pricer, Strategy

Q_PROMPT = "rag_questions"
A_PROMPT = "raft_answer"
SCAN = 50  # candidates looked at per distractor wanted


def distractors(ctx: Context, chunk: dict[str, Any], k: int, lang: str) -> list[str]:
    """The k chunks of other documents nearest to `chunk`, same-language ones first."""
    index = corpus_index(ctx)
    vec = index.vector(chunk["chunk_id"])
    if vec is None:
        fn = ctx.embed_fn or default_embed_fn()
        vec = normalise(fn([chunk["text"]]))[0]
    order = np.argsort(-(index.vectors @ np.asarray(vec, dtype=np.float32)), kind="stable")
    same, other = [], []
    for j in order[: SCAN * k]:
        row = ctx.chunks.get(index.chunk_ids[int(j)])
        if row is None or row["doc_id"] == chunk["doc_id"] or not row["text"].strip():
            continue
        (same if text_lang(ctx.cfg, row["text"], lang) == lang else other).append(row["chunk_id"])
        if len(same) >= k:
            break
    return (same + other)[:k]


def _shuffled_in(item: WorkItem, source: str, picked: list[str], n: int) -> tuple[list[str], int]:
    """The chunk ids shown with the n-th question, the source at a place fixed by the item, and its 1-based label."""
    at = int(stable_hash([item.item_id, n])[:8], 16) % (len(picked) + 1)
    return picked[:at] + [source] + picked[at:], at + 1


def _documents(ctx: Context, ap: Prompt, ids: list[str]) -> str:
    """The shown chunks, each labelled and cut to raft.max_doc_chars."""
    document = ap.extra.get("document", "[{{label}}]\n{{text}}")
    return "\n\n".join(render(document, label=i, text=ctx.chunk(cid)["text"][: ctx.cfg.raft.max_doc_chars].strip())
                       for i, cid in enumerate(ids, 1))


class Raft(Strategy):
    name = "raft"
    order = 100
    prompts = (Q_PROMPT, A_PROMPT)
    retrieves = True

    def estimate(self, item: WorkItem, price: Pricer) -> Cost:
        opts, gen, src = price.cfg.raft, price.gen, price.src
        k, shown = opts.questions, min(src, gen(opts.max_doc_chars)) * (1 + opts.distractors)
        prompt = price.system(Q_PROMPT) + src + k * (price.system(A_PROMPT) + shown + gen(Q_CHARS))
        return Cost(1 + k, prompt, gen(k * Q_CHARS) + k * gen(price.cfg.answer_target_chars), k)

    def run(self, item: WorkItem, ctx: Context, track: Track) -> Gen:
        chunk = ctx.chunk(item.chunk_id)
        cfg = ctx.cfg
        picked = distractors(ctx, chunk, cfg.raft.distractors, item.lang)
        if not picked:
            raise ItemFailure("no_distractors", "the corpus has no chunk of another document to show beside this one")
        qp, ap = ctx.prompt(Q_PROMPT, item.lang), ctx.prompt(A_PROMPT, item.lang)
        questions, qans = yield from ask_questions(ctx, track, qp, chunk, cfg.raft.questions)
        if qans.value is None:
            return []
        shown = [_shuffled_in(item, chunk["chunk_id"], picked, n) for n in range(len(questions))]
        users = [ap.render(documents=_documents(ctx, ap, ids), question=q) for q, (ids, _) in zip(questions, shown)]
        reqs = [ctx.request(ap.messages(documents=_documents(ctx, ap, ids), question=q,
                                        target_chars=cfg.answer_target_chars))
                for q, (ids, _) in zip(questions, shown)]
        answers = yield from call(track, reqs, parse_text, cfg.max_attempts)
        version = f"{qp.version}+{ap.version}"
        rows = zip(questions, users, shown, answers, split_usage(qans.usage, len(questions)))
        return [Draft(user, ans.value, "raft", version, chunk_id=chunk["chunk_id"], doc_id=chunk["doc_id"],
                      source_chunk_ids=[chunk["chunk_id"]], span_start=chunk["start"], span_end=chunk["end"],
                      generator=ans.model, usage=joint_usage(qu, ans), lang=item.lang, format=item.format,
                      meta={"question": q, "cite": label, "labels": len(ids),
                            "distractor_chunk_ids": [c for c in ids if c != chunk["chunk_id"]]})
                for q, user, (ids, label), ans, qu in rows if ans.value is not None]
