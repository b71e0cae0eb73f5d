"""From training samples and sampled replies to (prompt, chosen, rejected) pairs, every drop with its reason.

The prompt is a training sample's turns before its last assistant turn; the
chosen reply is that turn (the grounded reference answer). Rejected replies are
the base or SFT model's own samples for the same prompt: the useful ones are
fluent but not supported by the source span, so DPO pushes the model from
answering from memory towards answering from the documents. A sample that is
itself grounded (the lexical measures of qa_filter), near-identical to the
chosen reply, empty, or cut off at max_new_tokens is never used as rejected.
Prompts whose question is an eval question never become pairs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field

from infuse.operators.base import Reject, Strict
from infuse.operators.dataset import MESSAGE
from infuse.operators.qa_filter.grounding import grounding_score
from infuse.operators.tokens import tokens

PAIR_SCHEMA = pa.schema([
    ("pair_id", pa.string()),
    ("prompt", pa.list_(MESSAGE)),  # system? user [assistant user ...]
    ("chosen", pa.string()),
    ("rejected", pa.string()),
    ("origin", pa.string()),  # generated | user:<file name>
    ("rejected_from", pa.string()),  # base | sft | served | user
    ("sample_id", pa.string()),  # the training sample the prompt came from ("" for user pairs)
    ("chunk_id", pa.string()),
    ("lang", pa.string()),
    ("rejected_grounding", pa.float64()),  # grounding of the rejected reply in the source (null for user pairs)
    ("similarity", pa.float64()),  # rejected vs chosen (lexical)
])

SAMPLE_SCHEMA = pa.schema([
    ("sample_id", pa.string()),  # the prompt's training sample
    ("model", pa.string()),  # base | sft | served
    ("k", pa.int64()),  # the sample's number for this prompt and model
    ("text", pa.string()),
    ("finish_reason", pa.string()),
    ("error", pa.string()),
    ("grounding", pa.float64()),
    ("similarity", pa.float64()),
    ("fluency", pa.float64()),
    ("verdict", pa.string()),  # used | usable | grounded | near_identical | empty | truncated | failed
])


class PairOptions(Strict):
    """How a sampled reply is judged (the lexical measures of qa_filter's grounding)."""

    grounding_method: Literal["ngram", "rougel", "max"] = Field("ngram", description="qa_filter's grounding measure")
    grounding_n: int = Field(2, ge=1, le=6)
    max_grounding: float = Field(0.3, ge=0, le=1, description="a reply at or above this is grounded: never "
                                                              "rejected (qa_filter keeps answers from 0.3)")
    max_similarity: float = Field(0.7, gt=0, le=1, description="a reply this close to the chosen one (ROUGE-L or "
                                                               "bigram containment) is near-identical")
    min_tokens: int = Field(3, ge=1, description="a shorter reply is empty")


@dataclass
class Prompt:
    sample_id: str
    prompt: list[dict[str, str]]
    chosen: str
    source: str
    chunk_id: str = ""
    lang: str = ""


@dataclass
class Candidate:
    """One sampled reply for a prompt."""

    sample_id: str
    model: str
    k: int
    text: str | None
    finish_reason: str | None = None
    error: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    verdict: str = ""


def question_key(text: str) -> str:
    """A question as compared against the eval set: case, spacing and punctuation ignored."""
    return " ".join(tokens(text.lower())) or re.sub(r"\s+", " ", text.strip().lower())


def _split(messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], str] | None:
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None or not any(m["role"] == "user" for m in messages[:last]):
        return None
    return [{"role": m["role"], "content": m["content"]} for m in messages[:last]], messages[last]["content"]


def user_questions(messages: list[dict[str, str]]) -> list[str]:
    return [m["content"] for m in messages if m["role"] == "user"]


def prompts_from_rows(rows: list[dict[str, Any]], sources: dict[str, str], eval_rows: list[dict[str, Any]]
                      ) -> tuple[list[Prompt], list[Reject]]:
    """Domain training samples -> prompts with their chosen reply and source text. General and identity rows
    are not prompts; a sample whose question is also an eval question is a reject (`eval_prompt`)."""
    held_out = {question_key(q) for r in eval_rows for q in user_questions(r.get("messages") or [])}
    prompts, rejects = [], []
    for row in rows:
        if row.get("kind") != "domain":
            continue
        sid = str(row.get("sample_id"))
        split = _split(list(row.get("messages") or []))
        if split is None:
            rejects.append(Reject(sid, "no_prompt", "the sample has no user turn followed by an assistant turn"))
            continue
        prompt, chosen = split
        if any(question_key(q) in held_out for q in user_questions(prompt)):
            rejects.append(Reject(sid, "eval_prompt", "its question is an eval question: held out of preference "
                                                      "data"))
            continue
        source = sources.get(row.get("chunk_id") or "")
        if not source:
            rejects.append(Reject(sid, "no_source", "no source text for the sample's chunk",
                                  {"chunk_id": row.get("chunk_id")}))
            continue
        prompts.append(Prompt(sid, prompt, chosen, source, row.get("chunk_id") or "", row.get("lang") or ""))
    return prompts, rejects


def fluency(text: str) -> float:
    """A cheap fluency score in [0, 1]: the share of distinct token bigrams (loops and stutter score low)."""
    toks = tokens(text)
    if len(toks) < 2:
        return 0.0
    grams = list(zip(toks, toks[1:]))
    return len(set(grams)) / len(grams)


def judge(c: Candidate, p: Prompt, o: PairOptions) -> str:
    """The candidate's verdict: usable as rejected, or why not."""
    if c.error or c.text is None:
        return "failed"
    text = c.text.strip()
    if c.finish_reason == "length":
        return "truncated"
    if len(tokens(text)) < o.min_tokens:
        return "empty"
    c.scores["grounding"] = grounding_score(text, p.source, o.grounding_method, o.grounding_n)
    c.scores["similarity"] = grounding_score(text, p.chosen, "max", 2)
    c.scores["fluency"] = fluency(text)
    if c.scores["grounding"] >= o.max_grounding:
        return "grounded"
    if c.scores["similarity"] >= o.max_similarity or text == p.chosen.strip():
        return "near_identical"
    return "usable"


# When no candidate of a prompt is usable, the pair's drop reason is the most telling verdict among them.
_DROP_ORDER = ("grounded", "near_identical", "truncated", "empty", "failed")
_DROP_MESSAGES = {
    "grounded": "every sampled reply is grounded in the source: none can be the rejected answer",
    "near_identical": "every usable sampled reply is near-identical to the chosen answer",
    "truncated": "every sampled reply was cut off at max_new_tokens",
    "empty": "every sampled reply is empty",
    "failed": "sampling failed for this prompt",
}


def build_pairs(prompts: list[Prompt], candidates: list[Candidate], o: PairOptions
                ) -> tuple[list[dict[str, Any]], list[Reject]]:
    """One pair per prompt with a usable candidate: the most fluent, then the least grounded. Marks every
    candidate's verdict (`used` for the one chosen); a prompt without a usable one is a reject."""
    by_prompt: dict[str, list[Candidate]] = {}
    for c in candidates:
        by_prompt.setdefault(c.sample_id, []).append(c)
    pairs, rejects = [], []
    for p in prompts:
        cands = by_prompt.get(p.sample_id, [])
        for c in cands:
            c.verdict = judge(c, p, o)
        usable = [c for c in cands if c.verdict == "usable"]
        if not usable:
            seen = {c.verdict for c in cands} or {"failed"}
            why = next(v for v in _DROP_ORDER if v in seen)
            rejects.append(Reject(p.sample_id, f"rejected_{why}", _DROP_MESSAGES[why],
                                  {"samples": len(cands), "verdicts": sorted(c.verdict for c in cands)}))
            continue
        best = max(usable, key=lambda c: (round(c.scores["fluency"], 2), -c.scores["grounding"], -c.k))
        best.verdict = "used"
        pairs.append({"pair_id": f"{p.sample_id}:{best.model}:{best.k}", "prompt": p.prompt, "chosen": p.chosen,
                      "rejected": best.text.strip(), "origin": "generated", "rejected_from": best.model,
                      "sample_id": p.sample_id, "chunk_id": p.chunk_id, "lang": p.lang,
                      "rejected_grounding": round(best.scores["grounding"], 4),
                      "similarity": round(best.scores["similarity"], 4)})
    return pairs, rejects


def sample_rows(candidates: list[Candidate]) -> list[dict[str, Any]]:
    """The raw samples, as kept in the `samples` artifact."""
    return [{"sample_id": c.sample_id, "model": c.model, "k": c.k, "text": c.text, "finish_reason": c.finish_reason,
             "error": c.error, "grounding": c.scores.get("grounding"), "similarity": c.scores.get("similarity"),
             "fluency": c.scores.get("fluency"), "verdict": c.verdict} for c in candidates]
