"""The question set: the mix's eval split, reworded variants of its domain items, the user's own questions.

An item is one question with its reference answer and where the answer comes
from (document, chunk, span). Groups: `domain` (mix's held-out domain rows),
`paraphrase` (k rewordings of a domain item, made by the synthesis backend and
kept with the item: `parent_id`), `user` (the recipe's eval JSONL file: the
strongest test, questions nobody generated from the documents) and `general`
(mix's held-out general rows, for forgetting).

Domain items are short-answer facts when synthesis marks them: an eval row whose
`meta` (JSON) has `short` is asked for that short gold answer (with `aliases`),
so the strict score can check its values; once a run has such fact rows, its
"describe section X" rows are left out (`not_a_fact`): a passage of 300
characters cannot be scored as an answer.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infuse.operators.common.base import Reject, stable_hash
from infuse.operators.common.lang import detect_lang
from infuse.operators.llm import ChatRequest, LLMBackend
from infuse.operators.synthesize.schema import meta_of
from infuse.operators.common.tokens import tokens

GROUPS = ("domain", "paraphrase", "user", "general")


@dataclass
class Item:
    item_id: str
    group: str
    question: str
    reference: str
    prompt: list[dict[str, str]]  # the chat turns before the answer (system, earlier turns, the question)
    aliases: list[str] = field(default_factory=list)
    doc_id: str = ""
    chunk_id: str = ""
    span_start: int | None = None
    span_end: int | None = None
    lang: str = "en"
    parent_id: str = ""  # a paraphrase's domain item
    sample_id: str = ""  # the eval row it came from
    fact_ids: list[str] = field(default_factory=list)  # the facts it asks for (synthesis' fact_id, the user's facts)
    long_reference: str = ""  # a fact row's full assistant answer, when `reference` is its short gold answer

    def row(self) -> dict[str, Any]:
        return asdict(self)


def from_eval_rows(rows: list[dict[str, Any]], max_domain: int, max_general: int) -> tuple[list[Item], list[Reject]]:
    """Domain and general items of mix's eval split: each row's first question and its answer.

    Identity rows say who the assistant is, not what the documents say: left out, with a reason. Past the
    caps, items are left out in a fixed order (by sample id hash), so a run asks the same ones again.
    """
    items: list[Item] = []
    rejects: list[Reject] = []
    for r in rows:
        sid = r.get("sample_id") or ""
        msgs = list(r.get("messages") or [])
        first = next((i for i, m in enumerate(msgs) if m.get("role") == "assistant"), None)
        if first is None or first == 0 or msgs[first - 1].get("role") != "user":
            rejects.append(Reject(sid, "no_question", "eval row has no user turn followed by an answer"))
            continue
        kind = r.get("kind") or ("general" if r.get("source") != "domain" else "domain")
        if kind == "identity":
            rejects.append(Reject(sid, "identity_row", "identity rows are not questions about the documents"))
            continue
        group = "general" if kind == "general" else "domain"
        q, a = msgs[first - 1]["content"], msgs[first]["content"]
        fact = fact_meta(r.get("meta")) if group == "domain" else None
        items.append(Item(item_id=f"{group}:{sid}", group=group, question=q,
                          reference=fact["short"] if fact else a, aliases=fact["aliases"] if fact else [],
                          prompt=[{"role": m["role"], "content": m["content"]} for m in msgs[:first]],
                          doc_id=r.get("doc_id") or "", chunk_id=r.get("chunk_id") or "",
                          span_start=r.get("span_start"), span_end=r.get("span_end"),
                          lang=r.get("lang") or detect_lang(q), sample_id=sid,
                          fact_ids=fact["fact_ids"] if fact else [], long_reference=a if fact else ""))
    if any(i.long_reference for i in items):  # fact rows are here: passages cannot be scored as short answers
        rejects += [Reject(i.sample_id, "not_a_fact", "a domain row without a short answer (meta.short) in a run "
                                                      "with fact rows") for i in items
                    if i.group == "domain" and not i.long_reference]
        items = [i for i in items if i.group != "domain" or i.long_reference]
    kept: list[Item] = []
    for group, cap in (("domain", max_domain), ("general", max_general)):
        mine = sorted((i for i in items if i.group == group), key=lambda i: stable_hash(i.item_id))
        kept += mine[:cap]
        rejects += [Reject(i.sample_id, "over_max_items", f"more than {cap} {group} items (steps.evaluate."
                                                          f"max_{group}_items)") for i in mine[cap:]]
    return kept, rejects


def fact_meta(meta: Any) -> dict[str, Any] | None:
    """A fact row's short answer, aliases and fact id from its `meta` (JSON text or a dict); None for other rows."""
    meta = meta_of(meta)
    if not isinstance(meta.get("short"), str) or not meta["short"].strip():
        return None
    aliases = meta.get("aliases") or []
    fid = meta.get("fact_id")
    return {"short": meta["short"].strip(), "aliases": [str(x) for x in aliases] if isinstance(aliases, list) else [],
            "fact_ids": [str(fid)] if fid not in (None, "") else []}


def _fact_ids(rec: dict[str, Any]) -> list[str] | None:
    """A user line's `fact` (one id) or `facts` (a list of ids); None when malformed."""
    value = rec.get("facts", rec.get("fact"))
    if value is None:
        return []
    if isinstance(value, (str, int)):
        return [str(value)]
    if isinstance(value, list) and all(isinstance(x, (str, int)) for x in value):
        return [str(x) for x in value]
    return None


def read_user_questions(path: str | Path) -> tuple[list[Item], list[Reject]]:
    """The user's own eval JSONL: one {"question", "answer", "doc"?, "aliases"?, "fact"?/"facts"?} per line; a bad
    line is a reject."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"steps.evaluate.user_questions: no file {p}")
    items, rejects = [], []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        rid = f"{p.name}#{n}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            rejects.append(Reject(rid, "malformed_json", f"line {n}: {e}"))
            continue
        if not isinstance(rec, dict):
            rejects.append(Reject(rid, "malformed_row", f"line {n}: not a JSON object"))
            continue
        q, a = rec.get("question"), rec.get("answer")
        aliases = rec.get("aliases") or []
        if not isinstance(q, str) or not q.strip() or not isinstance(a, str) or not a.strip():
            rejects.append(Reject(rid, "missing_field", f"line {n}: needs non-empty string `question` and `answer`"))
            continue
        if not isinstance(aliases, list) or not all(isinstance(x, str) for x in aliases):
            rejects.append(Reject(rid, "malformed_row", f"line {n}: `aliases` must be a list of strings"))
            continue
        facts = _fact_ids(rec)
        if facts is None:
            rejects.append(Reject(rid, "malformed_row", f"line {n}: `fact`/`facts` must be an id or a list of ids"))
            continue
        items.append(Item(item_id=f"user:{n}", group="user", question=q.strip(), reference=a.strip(),
                          prompt=[{"role": "user", "content": q.strip()}], aliases=aliases,
                          doc_id=str(rec.get("doc") or ""), lang=detect_lang(q), sample_id=rid, fact_ids=facts))
    return items, rejects


# what a small model writes instead of a question: names of one; the prompt files' own examples
# (`"question": "改写后的问题"`) are added by `placeholders()`
PLACEHOLDERS = ("修改后的问题", "修改后的答案", "改写的问题", "新问题", "新的问题", "问题", "the modified question",
                "modified question", "the rewritten question", "new question", "paraphrased question", "question",
                "answer")
_ASK_START = re.compile(r"^(what|which|who|whom|whose|when|where|why|how|is|are|was|were|do|does|did|can|could|"
                        r"should|would|will|shall|may|might|must|has|have|had|in what|in which|for what|at what)\b",
                        re.I)
_ASK_ZH = re.compile(r"吗|什么|哪|几|多少|如何|怎么|怎样|为什么|为何|是否|谁|呢|何时|何处")


@functools.lru_cache(maxsize=1)
def placeholders() -> frozenset[str]:
    """PLACEHOLDERS and every example value of the paraphrase prompt files (`"question": "rewritten question"`),
    as normalised token strings."""
    from infuse.operators.prompts import PROMPT_DIR

    found = list(PLACEHOLDERS)
    for p in sorted(PROMPT_DIR.glob("paraphrase.*.y*ml")):
        found += re.findall(r'"(?:question|answer)"\s*:\s*"([^"]+)"', p.read_text(encoding="utf-8"))
    return frozenset(" ".join(tokens(x)) for x in found if tokens(x))


def is_question(text: str) -> bool:
    """Ends with ? or ？, starts with an asking word, or holds a Chinese asking word (吗, 什么, 多少, 如何, ...)."""
    t = text.strip()
    return t.endswith(("?", "？")) or bool(_ASK_START.match(t)) or bool(_ASK_ZH.search(t))


def variant_problem(variant: str, source: str, earlier: list[str] | tuple[str, ...] = ()) -> str | None:
    """Why a reworded question cannot stand in for `source`, as a reject reason, or None when it can.

    paraphrase_placeholder: the prompt's format example copied (`修改后的问题`, `{{question}}`);
    paraphrase_same: the source (or an earlier variant) again, by normalised tokens or token Jaccard >= 0.9;
    paraphrase_not_question: not a question (an answer, an order such as "Describe X.").
    """
    toks = tokens(variant)
    if "{{" in variant or not toks or " ".join(toks) in placeholders():
        return "paraphrase_placeholder"
    for other in (source, *earlier):
        theirs = set(tokens(other))
        if toks == tokens(other) or len(set(toks) & theirs) / len(set(toks) | theirs) >= 0.9:
            return "paraphrase_same"
    if not is_question(variant):
        return "paraphrase_not_question"
    return None


def _questions_of(text: str | None) -> list[str]:
    """Every question string of a JSON reply (objects with a question key, or plain strings), unfiltered."""
    from infuse.operators.synthesize.jsonrepair import QUESTION_KEYS, ParseError, parse_json_loose

    value = parse_json_loose(text)
    entries = value if isinstance(value, list) else [value]
    out = []
    for e in entries:
        q = next((e.get(k) for k in QUESTION_KEYS if isinstance(e.get(k), str)), None) if isinstance(e, dict) else e
        if isinstance(q, str) and q.strip():
            out.append(q.strip())
    if not out:
        raise ParseError("schema_invalid", "no question string in the reply")
    return out


def paraphrase(items: list[Item], backend: LLMBackend, k: int, max_tokens: int = 256,
               seed: int = 0) -> tuple[list[Item], list[Reject]]:
    """k reworded questions per domain item, through the synthesis backend's paraphrase prompt.

    The reference answer (and aliases, fact ids) stay the item's. Each variant that `variant_problem` turns down
    is a reject with its reason; an item whose reply fails or holds no question gets no variants, recorded too.
    """
    from infuse.operators.prompts import load_prompt
    from infuse.operators.synthesize.core import json_stop
    from infuse.operators.synthesize.jsonrepair import QA_JSON_SCHEMA

    if k <= 0 or not items:
        return [], []
    prefill = '[{"question": "'
    reqs, prompts = [], {}
    for n, it in enumerate(items):
        prompt = prompts.setdefault(it.lang, load_prompt("paraphrase", it.lang))
        reqs.append(ChatRequest(id=it.item_id, messages=prompt.messages(
                                    question=it.question, answer=it.long_reference or it.reference, k=k),
                                max_tokens=max_tokens, temperature=0.7, json_schema=QA_JSON_SCHEMA, prefill=prefill,
                                stop=json_stop(prefill), seed=seed + n))
    out, rejects = [], []
    for it, res in zip(items, backend.generate(reqs)):
        if not res.ok:
            rejects.append(Reject(it.sample_id, "paraphrase_failed", f"{res.error_kind}: {res.error}"))
            continue
        try:
            variants = _questions_of(res.text)
        except Exception as e:  # a malformed reply fails that item's variants, never the run
            rejects.append(Reject(it.sample_id, "paraphrase_malformed", f"{type(e).__name__}: {e}",
                                  {"raw": (res.text or "")[:500]}))
            continue
        kept: list[str] = []
        for q in variants:
            if len(kept) >= k:
                break
            why = variant_problem(q, it.question, kept)
            if why:
                rejects.append(Reject(it.sample_id, why, f"reworded question {q!r} of {it.question!r}",
                                      {"variant": q}))
                continue
            kept.append(q)
            out.append(Item(item_id=f"paraphrase:{it.sample_id}:{len(kept)}", group="paraphrase", question=q,
                            reference=it.reference, prompt=[*it.prompt[:-1], {"role": "user", "content": q}],
                            aliases=list(it.aliases), doc_id=it.doc_id, chunk_id=it.chunk_id,
                            span_start=it.span_start, span_end=it.span_end, lang=it.lang, parent_id=it.item_id,
                            sample_id=it.sample_id, fact_ids=list(it.fact_ids), long_reference=it.long_reference))
    return out, rejects
