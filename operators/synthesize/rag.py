"""rag: questions from one chunk, answered with the top-k chunks of the whole corpus.

Design note 001: "通过生成的问题，利用带有本地知识的rag大模型构建问答对". The
answer may draw on several chunks, so every chunk put in the context is listed
in source_chunk_ids. The chunk the questions came from is always in the context.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from infuse.operators.synthesize.core import Context, Gen, ItemFailure, Track, call, parse_text, prefill_for, split_usage
from infuse.operators.synthesize.jsonrepair import QUESTIONS_JSON_SCHEMA, parse_questions
from infuse.operators.synthesize.schema import Draft, WorkItem

Q_PROMPT = "rag_questions"
A_PROMPT = "rag_answer"
Q_PREFILL = '["'  # opens the question prompt's JSON array of strings (see ChatRequest.prefill)


@dataclass
class ChunkIndex:
    """Chunk embeddings (rows L2-normalised) for cosine top-k retrieval."""

    chunk_ids: list[str]
    vectors: np.ndarray
    _pos: dict[str, int] | None = None

    def vector(self, chunk_id: str) -> np.ndarray | None:
        """The stored (normalised) vector of a chunk; None when it is not in the index."""
        if self._pos is None:
            self._pos = {cid: i for i, cid in enumerate(self.chunk_ids)}
        i = self._pos.get(chunk_id)
        return None if i is None else self.vectors[i]

    def top_k(self, query_vecs: np.ndarray, k: int, exclude: str | None = None) -> list[list[tuple[str, float]]]:
        if len(self.chunk_ids) == 0:
            return [[] for _ in range(len(query_vecs))]
        scores = np.asarray(query_vecs, dtype=np.float32) @ self.vectors.T
        out = []
        for row in scores:
            order = np.argsort(-row, kind="stable")
            hits = []
            for j in order:
                cid = self.chunk_ids[int(j)]
                if cid == exclude:
                    continue
                hits.append((cid, float(row[int(j)])))
                if len(hits) == k:
                    break
            out.append(hits)
        return out


def _normalise(m: Any) -> np.ndarray:
    m = np.asarray(m, dtype=np.float32)
    if m.ndim == 1:
        m = m[None, :]
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(norms == 0, 1.0, norms)


def default_embed_fn() -> Callable[[list[str]], np.ndarray]:
    from infuse.operators.common.models import embed

    return embed


def build_index(chunks: dict[str, dict[str, Any]] | list[dict[str, Any]],
                embed_fn: Callable[[list[str]], Any] | None = None) -> ChunkIndex:
    """Embed every chunk once; build it once per run and pass it to every shard's run_items."""
    rows = list(chunks.values()) if isinstance(chunks, dict) else list(chunks)
    rows.sort(key=lambda r: r["chunk_id"])
    fn = embed_fn or default_embed_fn()
    vecs = _normalise(fn([r["text"] for r in rows])) if rows else np.zeros((0, 1), dtype=np.float32)
    return ChunkIndex([r["chunk_id"] for r in rows], vecs)


def _index(ctx: Context) -> ChunkIndex:
    if ctx.index is None:
        try:
            ctx.index = build_index(ctx.chunks, ctx.embed_fn)
        except Exception as e:  # the embedder is infrastructure, but one item must not crash the run
            raise ItemFailure("embed_error", f"could not embed the corpus: {e}") from e
    return ctx.index


def _context(ctx: Context, ids: list[str]) -> str:
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


def run(item: WorkItem, ctx: Context, track: Track) -> Gen:
    chunk = ctx.chunk(item.chunk_id)
    cfg = ctx.cfg
    qp = ctx.prompt(Q_PROMPT, item.lang)
    ap = ctx.prompt(A_PROMPT, item.lang)
    msgs = qp.messages(text=chunk["text"], n=cfg.questions_per_chunk)
    qreq = ctx.request(msgs, QUESTIONS_JSON_SCHEMA, prefill=prefill_for(qp, Q_PREFILL))
    [qans] = yield from call(track, [qreq], parse_questions, cfg.max_attempts)
    if qans.value is None:
        return []
    questions = qans.value[: cfg.questions_per_chunk]
    index = _index(ctx)
    fn = ctx.embed_fn or default_embed_fn()
    try:
        qvecs = _normalise(fn(questions))
    except Exception as e:
        raise ItemFailure("embed_error", f"could not embed the questions: {e}") from e
    hits = index.top_k(qvecs, cfg.rag.top_k, exclude=chunk["chunk_id"])
    used = [[chunk["chunk_id"]] + [cid for cid, _ in h if cid in ctx.chunks] for h in hits]
    reqs = [ctx.request(ap.messages(context=_context(ctx, ids), question=q, target_chars=cfg.answer_target_chars))
            for q, ids in zip(questions, used)]
    answers = yield from call(track, reqs, parse_text, cfg.max_attempts)
    q_usage = split_usage(qans.usage, len(questions))
    version = f"{qp.version}+{ap.version}"
    out = []
    for q, ids, ans, qu in zip(questions, used, answers, q_usage):
        if ans.value is None:
            continue
        out.append(Draft(q, ans.value, "rag", version, chunk_id=chunk["chunk_id"], doc_id=chunk["doc_id"],
                         source_chunk_ids=ids, span_start=chunk["start"], span_end=chunk["end"],
                         generator=ans.model, usage={k: qu.get(k, 0) + ans.usage.get(k, 0) for k in qu},
                         lang=item.lang, format=item.format))
    return out
