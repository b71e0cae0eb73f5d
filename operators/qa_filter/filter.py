"""The QA filter itself; see the package docstring for the reasons."""
from __future__ import annotations

import math
from typing import Any, Callable, Literal

import pyarrow as pa
from pydantic import Field

from infuse.operators.base import Reject, Strict
from infuse.operators.qa_filter.grounding import grounding_score
from infuse.operators.tokens import shingles

Sources = dict[str, str] | Callable[[str], str | None]


class GroundingOptions(Strict):
    enabled: bool = True
    method: Literal["ngram", "rougel", "max"] = "ngram"
    n: int = Field(2, ge=1, le=6, description="token n-gram size (a token is a CJK char or a Latin word)")
    threshold: float = Field(0.3, ge=0, le=1)
    skip_strategies: list[str] = Field(default_factory=lambda: ["identity", "code_tasks", "log_tasks"],
                                       description="base strategies whose answers are not meant to copy a source")


class JudgeOptions(Strict):
    enabled: bool = False
    threshold: float = Field(0.5, ge=0, le=1)
    max_source_chars: int = Field(4000, ge=200)
    max_tokens: int = Field(128, ge=16)


class QAFilterConfig(Strict):
    min_answer_chars: int = Field(8, ge=0, description="floor: shorter answers are dropped")
    sigma: float = Field(3.0, gt=0, description="answer lengths beyond mean +/- sigma*std are outliers")
    min_rows_for_sigma: int = Field(20, ge=3, description="fewer rows: no outlier test")
    dedup: bool = True
    dedup_threshold: float = Field(0.85, gt=0, le=1, description="MinHash Jaccard of question shingles")
    num_perm: int = Field(128, ge=16)
    shingle: int = Field(3, ge=1)
    grounding: GroundingOptions = GroundingOptions()
    judge: JudgeOptions = JudgeOptions()


def _turns(messages: Any) -> tuple[str, str] | None:
    """(first user question, last assistant answer) or None when the shape is wrong."""
    if not isinstance(messages, list) or not messages:
        return None
    roles = [m.get("role") if isinstance(m, dict) else None for m in messages]
    if any(r not in ("system", "user", "assistant") for r in roles):
        return None
    if roles[-1] != "assistant" or "user" not in roles:
        return None
    if any(not isinstance(m.get("content"), str) for m in messages):
        return None
    q = next(m["content"] for m in messages if m["role"] == "user")
    return q, messages[-1]["content"]


def _lookup(sources: Sources | None) -> Callable[[str], str | None]:
    if sources is None:
        return lambda cid: None
    if callable(sources):
        return sources
    return sources.get


def _source_text(row: dict[str, Any], lookup: Callable[[str], str | None]) -> str | None:
    ids = list(row.get("source_chunk_ids") or []) or ([row["chunk_id"]] if row.get("chunk_id") else [])
    texts = [t for t in (lookup(cid) for cid in ids) if t]
    return "\n".join(texts) if texts else None


def qa_filter(qa: pa.Table, sources: Sources | None, cfg: QAFilterConfig | None = None,
              backend: Any = None) -> tuple[pa.Table, list[Reject]]:
    """Kept rows (same schema, same order) and one Reject per dropped row.

    `sources` maps chunk_id -> chunk text (dict or function); the grounding
    source of a row is the text of its source_chunk_ids. `backend` (an
    LLMBackend) is used only when cfg.judge.enabled.
    """
    cfg = cfg or QAFilterConfig()
    rows = qa.to_pylist()
    rejects: list[Reject] = []
    alive: list[tuple[int, dict[str, Any], str, str]] = []  # (index, row, question, answer)

    for i, row in enumerate(rows):
        sid = row.get("sample_id") or f"row{i}"
        turns = _turns(row.get("messages"))
        if turns is None:
            rejects.append(Reject(sid, "malformed", "messages must be user/assistant turns ending with the assistant"))
            continue
        q, a = turns
        if not q.strip() or not a.strip():
            rejects.append(Reject(sid, "empty", "empty question or answer"))
            continue
        if len(a.strip()) < cfg.min_answer_chars:
            rejects.append(Reject(sid, "answer_too_short", f"answer has {len(a.strip())} chars, floor {cfg.min_answer_chars}",
                                  {"value": len(a.strip()), "floor": cfg.min_answer_chars}))
            continue
        alive.append((i, row, q, a))

    if cfg.dedup and alive:
        from datasketch import MinHash, MinHashLSH

        lsh = MinHashLSH(threshold=cfg.dedup_threshold, num_perm=cfg.num_perm)
        hashes: dict[str, Any] = {}
        order: dict[str, int] = {}
        kept = []
        for i, row, q, a in alive:
            sid = row.get("sample_id") or f"row{i}"
            mh = MinHash(num_perm=cfg.num_perm)
            for s in sorted(shingles(q, cfg.shingle)):
                mh.update(s)
            hits = [h for h in lsh.query(mh) if hashes[h].jaccard(mh) >= cfg.dedup_threshold]
            if hits:
                first = min(hits, key=order.__getitem__)
                rejects.append(Reject(sid, "duplicate_question", "near-duplicate of an earlier question",
                                      {"kept_sample_id": first, "jaccard": round(hashes[first].jaccard(mh), 3)}))
                continue
            if sid not in hashes:
                lsh.insert(sid, mh)
                hashes[sid] = mh
                order[sid] = len(order)
            kept.append((i, row, q, a))
        alive = kept

    if len(alive) >= cfg.min_rows_for_sigma:
        lengths = [len(a) for _, _, _, a in alive]
        mean = sum(lengths) / len(lengths)
        std = math.sqrt(sum((x - mean) ** 2 for x in lengths) / len(lengths))
        lo, hi = mean - cfg.sigma * std, mean + cfg.sigma * std
        kept = []
        for item in alive:
            n = len(item[3])
            if std > 0 and (n < lo or n > hi):
                sid = item[1].get("sample_id") or f"row{item[0]}"
                rejects.append(Reject(sid, "answer_length_outlier", f"answer length {n} outside [{lo:.0f}, {hi:.0f}]",
                                      {"value": n, "bounds": [round(lo, 1), round(hi, 1)]}))
            else:
                kept.append(item)
        alive = kept

    g = cfg.grounding
    lookup = _lookup(sources)
    sources_by_row: dict[int, str] = {}
    if g.enabled:
        kept = []
        for i, row, q, a in alive:
            sid = row.get("sample_id") or f"row{i}"
            base = (row.get("strategy") or "").split("+")[0]
            if base in g.skip_strategies:
                kept.append((i, row, q, a))
                continue
            src = _source_text(row, lookup)
            if src is None:
                rejects.append(Reject(sid, "no_source", "no source text for this sample's chunks",
                                      {"chunk_ids": list(row.get("source_chunk_ids") or [])}))
                continue
            score = grounding_score(a, src, g.method, g.n)
            if score < g.threshold:
                rejects.append(Reject(sid, "ungrounded", f"answer not supported by its source ({g.method} {score:.2f})",
                                      {"score": round(score, 4), "threshold": g.threshold, "method": g.method}))
                continue
            sources_by_row[i] = src
            kept.append((i, row, q, a))
        alive = kept

    if cfg.judge.enabled and backend is not None and alive:
        alive = _judge(alive, lookup, sources_by_row, cfg, backend, rejects)

    keep_idx = {i for i, *_ in alive}
    kept_rows = [r for i, r in enumerate(rows) if i in keep_idx]
    return pa.Table.from_pylist(kept_rows, schema=qa.schema), rejects


def _judge(alive: list[tuple[int, dict[str, Any], str, str]], lookup: Callable[[str], str | None],
           sources_by_row: dict[int, str], cfg: QAFilterConfig, backend: Any,
           rejects: list[Reject]) -> list[tuple[int, dict[str, Any], str, str]]:
    """LLM judge in one batch; a failed or unreadable verdict keeps the row (the judge is advisory)."""
    from infuse.operators.llm.base import ChatRequest
    from infuse.operators.prompts import load_prompt
    from infuse.operators.synth.jsonrepair import ParseError, parse_json_loose

    skip = set(cfg.grounding.skip_strategies)
    todo, reqs = [], []
    for item in alive:
        i, row, q, a = item
        if (row.get("strategy") or "").split("+")[0] in skip:
            continue
        src = sources_by_row.get(i) or _source_text(row, lookup)
        if not src:
            continue
        p = load_prompt("judge_grounding", row.get("lang") or "en")
        msgs = p.messages(source=src[: cfg.judge.max_source_chars], question=q, answer=a)
        reqs.append(ChatRequest(id=f"judge:{i}", messages=msgs, max_tokens=cfg.judge.max_tokens, temperature=0.0))
        todo.append(i)
    if not reqs:
        return alive
    try:
        results = backend.generate(reqs)
    except Exception:  # a judge that cannot answer keeps every row (the judge is optional)
        return alive
    dropped = set()
    for i, res in zip(todo, results):
        if not res.ok:
            continue
        try:
            verdict = parse_json_loose(res.text)
        except Exception:  # an unreadable verdict keeps the row
            continue
        if not isinstance(verdict, dict):
            continue
        try:
            score = float(verdict.get("score", 1.0 if verdict.get("grounded", True) else 0.0))
        except (TypeError, ValueError):
            continue
        if verdict.get("grounded") is False or score < cfg.judge.threshold:
            row = next(r for j, r, _, _ in alive if j == i)
            rejects.append(Reject(row.get("sample_id") or f"row{i}", "ungrounded", "the LLM judge found the answer unsupported",
                                  {"score": score, "threshold": cfg.judge.threshold, "judge": True,
                                   "reason": str(verdict.get("reason", ""))[:300]}))
            dropped.add(i)
    return [x for x in alive if x[0] not in dropped]
