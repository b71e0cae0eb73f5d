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
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infuse.operators.common.base import Reject, stable_hash
from infuse.operators.common.jsonl import Line, read_jsonl
from infuse.operators.common.lang import detect_lang
from infuse.operators.llm import ChatRequest, LLMBackend
from infuse.operators.synthesize.schema import meta_of
from infuse.operators.common.tokens import tokens

GROUPS = ("domain", "paraphrase", "user", "general")
CLOSED_BOOK = ("domain", "paraphrase", "user")  # the groups asked about the documents; general: forgetting


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
        got = _eval_item(r)
        (items if isinstance(got, Item) else rejects).append(got)
    items, not_facts = _facts_only(items)
    kept, over = _capped(items, {"domain": max_domain, "general": max_general})
    return kept, rejects + not_facts + over


def _eval_item(row: dict[str, Any]) -> Item | Reject:
    """One eval row as an item, or why it cannot be asked."""
    sid = row.get("sample_id") or ""
    msgs = list(row.get("messages") or [])
    first = next((i for i, m in enumerate(msgs) if m.get("role") == "assistant"), None)
    if not first or msgs[first - 1].get("role") != "user":
        return Reject(sid, "no_question", "eval row has no user turn followed by an answer")
    kind = row.get("kind") or ("general" if row.get("source") != "domain" else "domain")
    if kind == "identity":
        return Reject(sid, "identity_row", "identity rows are not questions about the documents")
    return _row_item(row, sid, "general" if kind == "general" else "domain", msgs, first)


def _row_item(row: dict[str, Any], sid: str, group: str, msgs: list[dict[str, Any]], first: int) -> Item:
    """The item of an eval row whose first answer is msgs[first]: a fact row (domain, `meta.short`) is asked for
    its short answer, with the full answer kept as `long_reference`."""
    q, a = msgs[first - 1]["content"], msgs[first]["content"]
    fact = (fact_meta(row.get("meta")) if group == "domain" else None) or {}
    return Item(item_id=f"{group}:{sid}", group=group, question=q, reference=fact.get("short", a),
                aliases=fact.get("aliases", []),
                prompt=[{"role": m["role"], "content": m["content"]} for m in msgs[:first]],
                doc_id=row.get("doc_id") or "", chunk_id=row.get("chunk_id") or "", span_start=row.get("span_start"),
                span_end=row.get("span_end"), lang=row.get("lang") or detect_lang(q), sample_id=sid,
                fact_ids=fact.get("fact_ids", []), long_reference=a if fact else "")


def _facts_only(items: list[Item]) -> tuple[list[Item], list[Reject]]:
    """Once fact rows are here, the domain rows without a short answer are left out: a passage cannot be
    scored as a short answer."""
    if not any(i.long_reference for i in items):
        return items, []
    passages = [i for i in items if i.group == "domain" and not i.long_reference]
    return [i for i in items if i.group != "domain" or i.long_reference], [
        Reject(i.sample_id, "not_a_fact", "a domain row without a short answer (meta.short) in a run with fact rows")
        for i in passages]


def _capped(items: list[Item], caps: dict[str, int]) -> tuple[list[Item], list[Reject]]:
    """At most caps[group] items of each group, chosen by item id hash (the same ones on every run)."""
    kept: list[Item] = []
    rejects: list[Reject] = []
    for group, cap in caps.items():
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
    line is a reject (id `<file name>#<line>`)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"steps.evaluate.user_questions: no file {p}")
    items: list[Item] = []
    rejects: list[Reject] = []
    for line in read_jsonl(p):
        rid = f"{p.name}#{line.number}"
        problem = _user_problem(line)
        if problem:
            rejects.append(Reject(rid, problem[0], f"line {line.number}: {problem[1]}"))
            continue
        rec = line.value
        q, a = rec["question"].strip(), rec["answer"].strip()
        items.append(Item(item_id=f"user:{line.number}", group="user", question=q, reference=a,
                          prompt=[{"role": "user", "content": q}], aliases=rec.get("aliases") or [],
                          doc_id=str(rec.get("doc") or ""), lang=detect_lang(rec["question"]), sample_id=rid,
                          fact_ids=_fact_ids(rec) or []))
    return items, rejects


def _user_problem(line: Line) -> tuple[str, str] | None:
    """(reason, message) of a user line that is no question, or None."""
    if not line.ok:
        return "malformed_json", str(line.error)
    rec = line.value
    if not isinstance(rec, dict):
        return "malformed_row", "not a JSON object"
    if not (_text(rec.get("question")) and _text(rec.get("answer"))):
        return "missing_field", "needs non-empty string `question` and `answer`"
    aliases = rec.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(x, str) for x in aliases):
        return "malformed_row", "`aliases` must be a list of strings"
    if _fact_ids(rec) is None:
        return "malformed_row", "`fact`/`facts` must be an id or a list of ids"
    return None


def _text(value: Any) -> bool:
    """A non-blank string."""
    return isinstance(value, str) and bool(value.strip())


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
