"""The question set: the mix's eval split, reworded variants of its domain items, the user's own questions.

An item is one question with its reference answer and where the answer comes
from (document, chunk, span). Groups: `domain` (mix's held-out domain rows),
`paraphrase` (k rewordings of a domain item, made by the synthesis backend and
kept with the item: `parent_id`), `user` (the recipe's eval JSONL file: the
strongest test, questions nobody generated from the documents) and `general`
(mix's held-out general rows, for forgetting).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infuse.operators.base import Reject, stable_hash
from infuse.operators.lang import detect_lang
from infuse.operators.llm import ChatRequest, LLMBackend
from infuse.operators.tokens import tokens

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
        items.append(Item(item_id=f"{group}:{sid}", group=group, question=q, reference=a,
                          prompt=[{"role": m["role"], "content": m["content"]} for m in msgs[:first]],
                          doc_id=r.get("doc_id") or "", chunk_id=r.get("chunk_id") or "",
                          span_start=r.get("span_start"), span_end=r.get("span_end"),
                          lang=r.get("lang") or detect_lang(q), sample_id=sid))
    kept: list[Item] = []
    for group, cap in (("domain", max_domain), ("general", max_general)):
        mine = sorted((i for i in items if i.group == group), key=lambda i: stable_hash(i.item_id))
        kept += mine[:cap]
        rejects += [Reject(i.sample_id, "over_max_items", f"more than {cap} {group} items (steps.evaluate."
                                                          f"max_{group}_items)") for i in mine[cap:]]
    return kept, rejects


def read_user_questions(path: str | Path) -> tuple[list[Item], list[Reject]]:
    """The user's own eval JSONL: one {"question", "answer", "doc"?, "aliases"?} per line; a bad line is a reject."""
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
        items.append(Item(item_id=f"user:{n}", group="user", question=q.strip(), reference=a.strip(),
                          prompt=[{"role": "user", "content": q.strip()}], aliases=aliases,
                          doc_id=str(rec.get("doc") or ""), lang=detect_lang(q), sample_id=rid))
    return items, rejects


def paraphrase(items: list[Item], backend: LLMBackend, k: int, max_tokens: int = 256,
               seed: int = 0) -> tuple[list[Item], list[Reject]]:
    """k reworded questions per domain item, through the synthesis backend's paraphrase prompt.

    The reference answer stays the item's; a variant equal to the question (or to an earlier variant) is
    dropped. An item whose reply fails or does not parse gets no variants, recorded as a reject.
    """
    from infuse.operators.prompts import load_prompt
    from infuse.operators.synth.core import json_stop
    from infuse.operators.synth.jsonrepair import QA_JSON_SCHEMA, parse_qa

    if k <= 0 or not items:
        return [], []
    prefill = '[{"question": "'
    reqs, prompts = [], {}
    for n, it in enumerate(items):
        prompt = prompts.setdefault(it.lang, load_prompt("paraphrase", it.lang))
        reqs.append(ChatRequest(id=it.item_id, messages=prompt.messages(question=it.question, answer=it.reference,
                                                                         k=k),
                                max_tokens=max_tokens, temperature=0.7, json_schema=QA_JSON_SCHEMA, prefill=prefill,
                                stop=json_stop(prefill), seed=seed + n))
    out, rejects = [], []
    for it, res in zip(items, backend.generate(reqs)):
        if not res.ok:
            rejects.append(Reject(it.sample_id, "paraphrase_failed", f"{res.error_kind}: {res.error}"))
            continue
        try:
            pairs = parse_qa(res.text)
        except Exception as e:  # a malformed reply fails that item's variants, never the run
            rejects.append(Reject(it.sample_id, "paraphrase_malformed", f"{type(e).__name__}: {e}",
                                  {"raw": (res.text or "")[:500]}))
            continue
        seen = {" ".join(tokens(it.question))}
        made = 0
        for q, _ in pairs:
            key = " ".join(tokens(q))
            if not key or key in seen or made >= k:
                continue
            seen.add(key)
            made += 1
            out.append(Item(item_id=f"paraphrase:{it.sample_id}:{made}", group="paraphrase", question=q.strip(),
                            reference=it.reference, prompt=[*it.prompt[:-1], {"role": "user", "content": q.strip()}],
                            doc_id=it.doc_id, chunk_id=it.chunk_id, span_start=it.span_start, span_end=it.span_end,
                            lang=it.lang, parent_id=it.item_id, sample_id=it.sample_id))
        if made == 0:
            rejects.append(Reject(it.sample_id, "paraphrase_malformed", "no usable reworded question in the reply",
                                  {"raw": (res.text or "")[:500]}))
    return out, rejects
