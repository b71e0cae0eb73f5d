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
from infuse.operators.prompts import render
from infuse.operators.synthesize import rag
from infuse.operators.synthesize.core import Context, Gen, ItemFailure, Track, call, parse_text, prefill_for, split_usage, text_lang
from infuse.operators.synthesize.jsonrepair import QUESTIONS_JSON_SCHEMA, parse_questions
from infuse.operators.synthesize.schema import Draft, WorkItem

Q_PROMPT = "rag_questions"
A_PROMPT = "raft_answer"
SCAN = 50  # candidates looked at per distractor wanted


def distractors(ctx: Context, chunk: dict[str, Any], k: int, lang: str) -> list[str]:
    """The k chunks of other documents nearest to `chunk`, same-language ones first."""
    index = rag._index(ctx)
    vec = index.vector(chunk["chunk_id"])
    if vec is None:
        fn = ctx.embed_fn or rag.default_embed_fn()
        vec = rag._normalise(fn([chunk["text"]]))[0]
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


def run(item: WorkItem, ctx: Context, track: Track) -> Gen:
    chunk = ctx.chunk(item.chunk_id)
    cfg = ctx.cfg
    opts = cfg.raft
    picked = distractors(ctx, chunk, opts.distractors, item.lang)
    if not picked:
        raise ItemFailure("no_distractors", "the corpus has no chunk of another document to show beside this one")
    qp, ap = ctx.prompt(Q_PROMPT, item.lang), ctx.prompt(A_PROMPT, item.lang)
    qreq = ctx.request(qp.messages(text=chunk["text"], n=opts.questions), QUESTIONS_JSON_SCHEMA,
                       prefill=prefill_for(qp, '["'))
    [qans] = yield from call(track, [qreq], parse_questions, cfg.max_attempts)
    if qans.value is None:
        return []
    questions = qans.value[: opts.questions]
    shown = []  # per question: the chunk ids in the order shown, and the 1-based label of the source
    for n, _ in enumerate(questions):
        at = int(stable_hash([item.item_id, n])[:8], 16) % (len(picked) + 1)
        ids = picked[:at] + [chunk["chunk_id"]] + picked[at:]
        shown.append((ids, at + 1))
    document = ap.extra.get("document", "[{{label}}]\n{{text}}")
    def documents(ids: list[str]) -> str:
        return "\n\n".join(render(document, label=i, text=ctx.chunk(cid)["text"][: opts.max_doc_chars].strip())
                           for i, cid in enumerate(ids, 1))

    users = [ap.render(documents=documents(ids), question=q) for q, (ids, _) in zip(questions, shown)]
    reqs = [ctx.request(ap.messages(documents=documents(ids), question=q, target_chars=cfg.answer_target_chars))
            for q, (ids, _) in zip(questions, shown)]
    answers = yield from call(track, reqs, parse_text, cfg.max_attempts)
    version = f"{qp.version}+{ap.version}"
    out = []
    for q, user, (ids, label), ans, qu in zip(questions, users, shown, answers, split_usage(qans.usage, len(questions))):
        if ans.value is None:
            continue
        out.append(Draft(user, ans.value, "raft", version, chunk_id=chunk["chunk_id"], doc_id=chunk["doc_id"],
                         source_chunk_ids=[chunk["chunk_id"]], span_start=chunk["start"], span_end=chunk["end"],
                         generator=ans.model, usage={k: qu.get(k, 0) + ans.usage.get(k, 0) for k in qu},
                         lang=item.lang, format=item.format,
                         meta={"question": q, "cite": label, "labels": len(ids),
                               "distractor_chunk_ids": [c for c in ids if c != chunk["chunk_id"]]}))
    return out
