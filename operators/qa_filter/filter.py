"""The QA filter itself; see the package docstring for the reasons."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import pyarrow as pa
from pydantic import Field

from infuse.operators.common.base import Reject, Strict
from infuse.operators.qa_filter.grounding import grounding_score
from infuse.operators.qa_filter.language import LanguageOptions, check_language
from infuse.operators.synthesize.schema import meta_of
from infuse.operators.common.tokens import shingles

Sources = dict[str, str] | Callable[[str], str | None]


class GroundingOptions(Strict):
    enabled: bool = True
    method: Literal["ngram", "rougel", "max"] = "ngram"
    n: int = Field(2, ge=1, le=6, description="token n-gram size (a token is a CJK char or a Latin word)")
    threshold: float = Field(0.3, ge=0, le=1)
    # facts: the answer restates a value found verbatim in the document (its span), in a template sentence
    skip_strategies: list[str] = Field(default_factory=lambda: ["identity", "code_tasks", "log_tasks", "facts"],
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
    language: LanguageOptions = LanguageOptions()
    judge: JudgeOptions = JudgeOptions()


def exchanges(messages: Any) -> tuple[list[dict[str, str]], list[tuple[str, str]]] | None:
    """(leading system messages, [(user, assistant), ...]) or None when the shape is wrong.

    A sample is system messages first, then user/assistant turns in strict
    alternation, ending with the assistant: one exchange for a QA pair, several
    for a dialogue.
    """
    if not isinstance(messages, list) or not messages:
        return None
    if any(not isinstance(m, dict) or not isinstance(m.get("content"), str) for m in messages):
        return None
    roles = [m.get("role") for m in messages]
    n_sys = 0
    while n_sys < len(roles) and roles[n_sys] == "system":
        n_sys += 1
    rest = roles[n_sys:]
    if not rest or len(rest) % 2 or any(r != ("user", "assistant")[k % 2] for k, r in enumerate(rest)):
        return None
    body = messages[n_sys:]
    return list(messages[:n_sys]), [(body[k]["content"], body[k + 1]["content"]) for k in range(0, len(body), 2)]


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


@dataclass
class _Sample:
    """A row being filtered: its exchanges may be cut short when a later turn fails a check."""

    i: int
    row: dict[str, Any]
    sid: str
    system: list[dict[str, str]]
    pairs: list[tuple[str, str]]
    meta: dict[str, Any] = field(default_factory=dict)
    n_in: int = 0  # exchanges the row came with

    @property
    def dedup_key(self) -> tuple[str, str]:
        """What makes two samples the same: the question (RAFT shows documents around it:
        meta.question); for a sample whose question names only a topic (meta.topic: a rewording, a
        summary, a list of facts) its answer among those of its strategy, since its question
        ("介绍一下X。") is shared by design."""
        if self.row.get("cpt_text") or self.meta.get("topic") is not None:
            return f"{(self.row.get('strategy') or '').split('+')[0]} answer", self.pairs[0][1]
        return "question", str(self.meta.get("question") or self.pairs[0][0])

    def messages(self) -> list[dict[str, str]]:
        out = list(self.system)
        for q, a in self.pairs:
            out += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        return out


def _cut(s: _Sample, turn: int, reason: str, message: str, detail: dict[str, Any], rejects: list[Reject]) -> bool:
    """A turn failed: the sample keeps the exchanges before it (later turns build on it), or is
    rejected when it is the first. Returns whether the sample survives."""
    if turn == 0:
        rejects.append(Reject(s.sid, reason, message, detail))
        return False
    dropped = len(s.pairs) - turn
    rejects.append(Reject(f"{s.sid}#turn{turn}", f"{reason}_turn", f"turn {turn + 1}: {message}; "
                          f"the dialogue keeps its first {turn} turn(s)",
                          {**detail, "sample_id": s.sid, "turn": turn, "kept_turns": turn, "dropped_turns": dropped}))
    s.pairs = s.pairs[:turn]
    return True


def qa_filter(qa: pa.Table, sources: Sources | None, cfg: QAFilterConfig | None = None,
              backend: Any = None, documents: Sources | None = None) -> tuple[pa.Table, list[Reject]]:
    """Kept rows (same schema, same order; a dialogue may lose its last turns) and one Reject per
    dropped row or turn.

    `sources` maps chunk_id -> chunk text (dict or function); the grounding
    source of a row is the text of its source_chunk_ids. `documents` maps
    doc_id -> the document's text, which the language check lets a sample quote
    (default: its source chunks). `backend` (an LLMBackend) is used only when
    cfg.judge.enabled. Every assistant turn is checked: a failing first turn
    rejects the sample, a failing later turn cuts the dialogue before it.
    """
    cfg = cfg or QAFilterConfig()
    rows = qa.to_pylist()
    rejects: list[Reject] = []
    alive: list[_Sample] = []
    lookup = _lookup(sources)
    doc_lookup = _lookup(documents)

    for i, row in enumerate(rows):
        sid = row.get("sample_id") or f"row{i}"
        shape = exchanges(row.get("messages"))
        if shape is None:
            rejects.append(Reject(sid, "malformed", "messages must be user/assistant turns in turn, "
                                                    "after any system message, ending with the assistant"))
            continue
        system, pairs = shape
        if any(not q.strip() or not a.strip() for q, a in pairs):
            rejects.append(Reject(sid, "empty", "empty question or answer"))
            continue
        s = _Sample(i, row, sid, system, pairs, meta_of(row.get("meta")), len(pairs))
        ok = True
        for k, (_, a) in enumerate(s.pairs):
            n = len(a.strip())
            if n < cfg.min_answer_chars:
                ok = _cut(s, k, "answer_too_short", f"answer has {n} chars, floor {cfg.min_answer_chars}",
                          {"value": n, "floor": cfg.min_answer_chars}, rejects)
                break
        if ok:
            alive.append(s)

    if cfg.language.enabled and alive:
        kept = []
        for s in alive:
            def quotable(s: _Sample = s) -> str:
                extra = [lookup(c) or "" for c in s.meta.get("distractor_chunk_ids") or []]
                own = doc_lookup(s.row.get("doc_id") or "") if s.row.get("doc_id") else None
                return "\n".join([own or _source_text(s.row, lookup) or "", *extra])

            _, problem = check_language(s.messages(), quotable, cfg.language)
            if problem is not None:
                rejects.append(Reject(s.sid, "mixed_language", f"mixed-language sample: {problem['why']}", problem))
                continue
            kept.append(s)
        alive = kept

    if cfg.dedup and alive:
        from datasketch import MinHash, MinHashLSH

        lshs: dict[str, Any] = {}
        hashes: dict[str, Any] = {}
        order: dict[str, int] = {}
        kept = []
        for s in alive:
            kind, key = s.dedup_key
            lsh = lshs.setdefault(kind, MinHashLSH(threshold=cfg.dedup_threshold, num_perm=cfg.num_perm))
            mh = MinHash(num_perm=cfg.num_perm)
            for sh in sorted(shingles(key, cfg.shingle)):
                mh.update(sh)
            hits = [h for h in lsh.query(mh) if hashes[h].jaccard(mh) >= cfg.dedup_threshold]
            if hits:
                first = min(hits, key=order.__getitem__)
                rejects.append(Reject(s.sid, "duplicate_question", f"near-duplicate of an earlier {kind}",
                                      {"kept_sample_id": first, "jaccard": round(hashes[first].jaccard(mh), 3)}))
                continue
            if s.sid not in hashes:
                lsh.insert(s.sid, mh)
                hashes[s.sid] = mh
                order[s.sid] = len(order)
            kept.append(s)
        alive = kept

    if len(alive) >= cfg.min_rows_for_sigma:
        lengths = [answer_length(s.pairs) for s in alive]
        mean = sum(lengths) / len(lengths)
        std = math.sqrt(sum((x - mean) ** 2 for x in lengths) / len(lengths))
        lo, hi = mean - cfg.sigma * std, mean + cfg.sigma * std
        kept = []
        for s, n in zip(alive, lengths):
            if std > 0 and (n < lo or n > hi):
                rejects.append(Reject(s.sid, "answer_length_outlier", f"answer length {n:.0f} outside [{lo:.0f}, {hi:.0f}]",
                                      {"value": n, "bounds": [round(lo, 1), round(hi, 1)]}))
            else:
                kept.append(s)
        alive = kept

    g = cfg.grounding
    sources_by_row: dict[int, str] = {}
    if g.enabled:
        kept = []
        for s in alive:
            base = (s.row.get("strategy") or "").split("+")[0]
            if base in g.skip_strategies:
                kept.append(s)
                continue
            src = _source_text(s.row, lookup)
            if src is None:
                rejects.append(Reject(s.sid, "no_source", "no source text for this sample's chunks",
                                      {"chunk_ids": list(s.row.get("source_chunk_ids") or [])}))
                continue
            alive_turns = True
            for k, (_, a) in enumerate(s.pairs):
                score = grounding_score(a, src, g.method, g.n)
                if score < g.threshold:
                    alive_turns = _cut(s, k, "ungrounded", f"answer not supported by its source ({g.method} {score:.2f})",
                                       {"score": round(score, 4), "threshold": g.threshold, "method": g.method}, rejects)
                    break
            if not alive_turns:
                continue
            sources_by_row[s.i] = src
            kept.append(s)
        alive = kept

    kept = []
    for s in alive:  # RAFT: the answer must name the document that holds it, and no distractor
        cite = s.meta.get("cite")
        if isinstance(cite, int):
            named = cited_labels(s.pairs[0][1], int(s.meta.get("labels") or cite))
            wrong = sorted(named - {cite})
            if cite not in named or wrong:
                rejects.append(Reject(s.sid, "wrong_citation", f"the answer should cite [{cite}]" +
                                      (f" and no distractor, but cites {wrong}" if wrong else " but does not"),
                                      {"expected": cite, "cited": sorted(named)}))
                continue
        kept.append(s)
    alive = kept

    if cfg.judge.enabled and backend is not None and alive:
        alive = _judge(alive, lookup, sources_by_row, cfg, backend, rejects)

    by_index = {s.i: s for s in alive}
    kept_rows = []
    for i, r in enumerate(rows):
        s = by_index.get(i)
        if s is not None:
            kept_rows.append({**r, "messages": s.messages()} if len(s.pairs) < s.n_in else r)
    return pa.Table.from_pylist(kept_rows, schema=qa.schema), rejects


_CITE = re.compile(r"\[\s*(?:文档|Document|Doc)?\s*(\d{1,3})\s*\]|(?:文档|[Dd]ocument)\s*\[?(\d{1,3})")


def cited_labels(answer: str, n_labels: int) -> set[int]:
    """The document labels an answer cites: [2], [文档2], 文档2, Document 2 (only 1..n_labels count)."""
    found = {int(a or b) for a, b in _CITE.findall(answer or "")}
    return {k for k in found if 1 <= k <= n_labels}


def answer_lengths(qa: pa.Table) -> list[int]:
    """The length of every assistant turn of a table of samples (for the report's distribution)."""
    return [len(m["content"]) for msgs in qa.column("messages").to_pylist() for m in msgs or []
            if m.get("role") == "assistant"]


def answer_length(pairs: list[tuple[str, str]]) -> float:
    """A sample's answer length: its assistant turns' mean (the one answer of a QA pair)."""
    return sum(len(a) for _, a in pairs) / len(pairs)


def _judge(alive: list[_Sample], lookup: Callable[[str], str | None], sources_by_row: dict[int, str],
           cfg: QAFilterConfig, backend: Any, rejects: list[Reject]) -> list[_Sample]:
    """LLM judge of every assistant turn, in one batch; a failed or unreadable verdict keeps the turn
    (the judge is advisory). A turn found unsupported is cut like an ungrounded one."""
    from infuse.operators.llm.base import ChatRequest
    from infuse.operators.prompts import load_prompt
    from infuse.operators.synthesize.jsonrepair import parse_json_loose

    skip = set(cfg.grounding.skip_strategies)
    todo: list[tuple[_Sample, int]] = []
    reqs = []
    for s in alive:
        if (s.row.get("strategy") or "").split("+")[0] in skip:
            continue
        src = sources_by_row.get(s.i) or _source_text(s.row, lookup)
        if not src:
            continue
        p = load_prompt("judge_grounding", s.row.get("lang") or "en")
        for k, (q, a) in enumerate(s.pairs):
            msgs = p.messages(source=src[: cfg.judge.max_source_chars], question=q, answer=a)
            reqs.append(ChatRequest(id=f"judge:{s.i}" + (f"#t{k}" if k else ""), messages=msgs,
                                    max_tokens=cfg.judge.max_tokens, temperature=0.0))
            todo.append((s, k))
    if not reqs:
        return alive
    try:
        results = backend.generate(reqs)
    except Exception:  # a judge that cannot answer keeps every row (the judge is optional)
        return alive
    failed: dict[int, tuple[int, float, str]] = {}  # sample index -> its first unsupported turn
    for (s, k), res in zip(todo, results):
        if not res.ok:
            continue
        try:
            verdict = parse_json_loose(res.text)
        except Exception:  # an unreadable verdict keeps the turn
            continue
        if not isinstance(verdict, dict):
            continue
        try:
            score = float(verdict.get("score", 1.0 if verdict.get("grounded", True) else 0.0))
        except (TypeError, ValueError):
            continue
        if (verdict.get("grounded") is False or score < cfg.judge.threshold) and k < failed.get(s.i, (k + 1,))[0]:
            failed[s.i] = (k, score, str(verdict.get("reason", ""))[:300])
    out = []
    for s in alive:
        if s.i in failed:
            k, score, reason = failed[s.i]
            if not _cut(s, k, "ungrounded", "the LLM judge found the answer unsupported",
                        {"score": score, "threshold": cfg.judge.threshold, "judge": True, "reason": reason}, rejects):
                continue
        out.append(s)
    return out
