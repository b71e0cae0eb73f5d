"""From training samples and sampled replies to (prompt, chosen, rejected) pairs, every drop with its reason.

The prompt is a training sample's turns before its last assistant turn; the
chosen reply is that turn (the grounded reference answer). Rejected replies are
the base or SFT model's own samples for the same prompt.

- A knowledge row (its `meta` has a short gold answer, `short`, with `aliases`)
  is judged by the strict score of evaluate: a reply that fails it states a
  wrong detail or none, so it is provably ungrounded and can be the rejected
  side; a reply that passes is `correct` (the model knows the fact: no pair).
  A reply cut off at max_new_tokens is still rejected material when it already
  states a conflicting value, else it is `truncated`. Replies that state a
  conflicting value are preferred: DPO then pushes down confident wrong answers.
- Any other row keeps the fluency rule: the useful replies are fluent but not
  supported by the source span (the lexical measures of qa_filter), so DPO
  pushes the model from answering from memory towards the documents. A reply
  that is grounded, near-identical to the chosen one, empty, or cut off is
  never used.

Prompts whose question is an eval question never become pairs.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field

from infuse.operators.common.base import Reject, Strict
from infuse.operators.common.dataset import MESSAGE
from infuse.operators.evaluate.metrics import strict_detail
from infuse.operators.qa_filter.grounding import grounding_score
from infuse.operators.synthesize.schema import meta_of
from infuse.operators.common.tokens import tokens

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
    ("fact_id", pa.string()),  # the knowledge row's fact ("" when it has none, null for user pairs)
    ("rejected_strict", pa.float64()),  # strict score of the rejected reply against the gold answer (0.0: wrong);
                                        # null when the prompt has no short gold answer
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
    ("strict", pa.float64()),  # against the gold short answer (knowledge prompts only)
    ("conflicting", pa.bool_()),  # the reply states a value that conflicts with the gold answer
    ("verdict", pa.string()),  # used | usable | correct | grounded | near_identical | empty | truncated | failed
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
    short: str = ""  # the gold short answer of a knowledge row: its replies are judged by the strict score
    aliases: list[str] = field(default_factory=list)
    fact_id: str = ""


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


def fact_meta(row: dict[str, Any]) -> dict[str, Any]:
    """A knowledge row's `meta` (fact_id, short, aliases, heldout) as a dict; {} for a row without one. The
    column is JSON text in the QA tables; a dict is taken as is."""
    return meta_of(row.get("meta"))


def _gold(meta: dict[str, Any]) -> tuple[str, list[str]]:
    short = meta.get("short")
    short = str(short).strip() if isinstance(short, (str, int, float)) and not isinstance(short, bool) else ""
    aliases = meta.get("aliases") if isinstance(meta.get("aliases"), list) else []
    return short, [str(a).strip() for a in aliases if isinstance(a, (str, int, float)) and str(a).strip()]


def _prompt_reject(sid: str, question: str, chosen: str, short: str, aliases: list[str], source: str,
                   chunk_id: str) -> Reject | None:
    """Why a domain row that has a prompt is still no preference prompt, or None. (A `heldout` phrasing in
    train is one mix did not draw for eval: it trains like the others.)"""
    if short and not strict_detail(chosen, short, aliases, question=question)["ok"]:
        return Reject(sid, "reference_not_strict", "the reference answer itself fails the strict score against "
                                                   "its gold short answer, so it cannot be the chosen side",
                      {"short": short, "aliases": aliases})
    if not short and not source:
        return Reject(sid, "no_source", "no source text for the sample's chunk", {"chunk_id": chunk_id})
    return None


def prompts_from_rows(rows: list[dict[str, Any]], sources: dict[str, str], eval_rows: list[dict[str, Any]]
                      ) -> tuple[list[Prompt], list[Reject]]:
    """Domain training samples -> prompts with their chosen reply, source text and (knowledge rows) gold short
    answer. General and identity rows are not prompts; a sample whose question is also an eval question is a
    reject (`eval_prompt`)."""
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
        meta = fact_meta(row)
        short, aliases = _gold(meta)
        chunk_id = row.get("chunk_id") or ""
        source = sources.get(chunk_id) or ""
        why = _prompt_reject(sid, prompt[-1]["content"], chosen, short, aliases, source, chunk_id)
        if why is not None:
            rejects.append(why)
            continue
        prompts.append(Prompt(sid, prompt, chosen, source, chunk_id, row.get("lang") or "", short, aliases,
                              str(meta.get("fact_id") or "")))
    return prompts, rejects


def choose_prompts(prompts: list[Prompt], n: int, seed: int) -> list[Prompt]:
    """At most n prompts, a seeded choice: fact questions with a gold answer first (their pairs are provable),
    then the others. Kept in sample_id order."""
    rng = random.Random(seed)
    facts = [p for p in prompts if p.short]
    others = [p for p in prompts if not p.short]
    chosen = rng.sample(facts, min(n, len(facts)))
    chosen += rng.sample(others, min(n - len(chosen), len(others)))
    return sorted(chosen, key=lambda p: p.sample_id)


def fluency(text: str) -> float:
    """A cheap fluency score in [0, 1]: the share of distinct token bigrams (loops and stutter score low)."""
    toks = tokens(text)
    if len(toks) < 2:
        return 0.0
    grams = list(zip(toks, toks[1:]))
    return len(set(grams)) / len(grams)


def judge_fact(c: Candidate, p: Prompt, text: str) -> str:
    """A reply to a question with a gold short answer: `correct` when it passes the strict score; otherwise it is
    provably ungrounded (`usable`), unless it is empty or was cut off before stating a conflicting value."""
    detail = strict_detail(text, p.short, p.aliases, question=p.prompt[-1]["content"])
    c.scores["strict"] = 1.0 if detail["ok"] else 0.0
    c.scores["conflicting"] = 1.0 if detail["conflicting"] else 0.0
    c.scores["similarity"] = grounding_score(text, p.chosen, "max", 2)
    c.scores["fluency"] = fluency(text)
    if p.source:
        c.scores["grounding"] = grounding_score(text, p.source, "ngram", 2)
    if detail["ok"]:
        return "correct"
    if not tokens(text):
        return "empty"
    if c.finish_reason == "length" and not detail["conflicting"]:
        return "truncated"
    return "usable"


def judge(c: Candidate, p: Prompt, o: PairOptions) -> str:
    """The candidate's verdict: usable as rejected, or why not (the strict rule for a fact question with a gold
    short answer, the fluency rule otherwise)."""
    if c.error or c.text is None:
        return "failed"
    text = c.text.strip()
    if p.short:
        return judge_fact(c, p, text)
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
_DROP_ORDER = ("correct", "grounded", "near_identical", "truncated", "empty", "failed")
_DROP_MESSAGES = {
    "correct": "every sampled reply states the gold answer (strict score): the model already knows this fact",
    "grounded": "every sampled reply is grounded in the source: none can be the rejected answer",
    "near_identical": "every usable sampled reply is near-identical to the chosen answer",
    "truncated": "every sampled reply was cut off at max_new_tokens (for a fact question: before stating any "
                 "conflicting value)",
    "empty": "every sampled reply is empty",
    "failed": "sampling failed for this prompt",
}


def _rank(c: Candidate, p: Prompt) -> tuple[float, ...]:
    """Which usable reply becomes the rejected one: for a fact question a confidently wrong one (it states a
    conflicting value) first, then the most fluent; otherwise the most fluent, then the least grounded."""
    if p.short:
        return (c.scores["conflicting"], round(c.scores["fluency"], 2), -c.k)
    return (round(c.scores["fluency"], 2), -c.scores["grounding"], -c.k)


def build_pairs(prompts: list[Prompt], candidates: list[Candidate], o: PairOptions
                ) -> tuple[list[dict[str, Any]], list[Reject]]:
    """One pair per prompt with a usable candidate (see _rank). Marks every candidate's verdict (`used` for the
    one chosen); a prompt without a usable one is a reject whose reason is the most telling verdict."""
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
        best = max(usable, key=lambda c: _rank(c, p))
        best.verdict = "used"
        pairs.append(_pair(p, best))
    return pairs, rejects


def _pair(p: Prompt, c: Candidate) -> dict[str, Any]:
    grounding = c.scores.get("grounding")
    return {"pair_id": f"{p.sample_id}:{c.model}:{c.k}", "prompt": p.prompt, "chosen": p.chosen,
            "rejected": (c.text or "").strip(), "origin": "generated", "rejected_from": c.model,
            "sample_id": p.sample_id, "chunk_id": p.chunk_id, "lang": p.lang,
            "rejected_grounding": None if grounding is None else round(grounding, 4),
            "similarity": round(c.scores["similarity"], 4), "fact_id": p.fact_id,
            "rejected_strict": c.scores.get("strict")}


def sample_rows(candidates: list[Candidate]) -> list[dict[str, Any]]:
    """The raw samples, as kept in the `samples` artifact."""
    return [{"sample_id": c.sample_id, "model": c.model, "k": c.k, "text": c.text, "finish_reason": c.finish_reason,
             "error": c.error, "grounding": c.scores.get("grounding"), "similarity": c.scores.get("similarity"),
             "fluency": c.scores.get("fluency"), "strict": c.scores.get("strict"),
             "conflicting": None if "conflicting" not in c.scores else bool(c.scores["conflicting"]),
             "verdict": c.verdict} for c in candidates]
