"""Optional LLM judge: a 1-5 grade of an answer against its reference, through the synthesis backend.

The rubric is the `judge_answer` prompt (saved with the report). A reply that
fails or holds no readable grade leaves that answer ungraded (None), never the
run, and is a reject saying why (`judge_failed`, `judge_unreadable`), so an
ungraded answer is never silent.
"""
from __future__ import annotations

from typing import Any

from infuse.operators.common.base import Reject
from infuse.operators.llm import ChatRequest, ChatResult, LLMBackend

SCHEMA: dict[str, Any] = {"type": "object", "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5},
                                                           "reason": {"type": "string"}}, "required": ["score"]}


def rubric(lang: str = "en") -> str:
    from infuse.operators.prompts import load_prompt

    p = load_prompt("judge_answer", lang)
    return f"{p.version}\n\n{p.system}"


def judge(rows: list[dict[str, Any]], backend: LLMBackend, max_tokens: int = 96) -> tuple[list[int | None],
                                                                                          list[Reject]]:
    """rows: dicts with question, reference, answer, lang (and model, item_id: the reject's id and detail).
    Returns a grade (or None) per row, and a reject for each row left ungraded."""
    from infuse.operators.prompts import load_prompt

    prompts: dict[str, Any] = {}
    reqs = []
    for n, r in enumerate(rows):
        p = prompts.setdefault(r.get("lang") or "en", load_prompt("judge_answer", r.get("lang") or "en"))
        reqs.append(ChatRequest(id=str(n), messages=p.messages(question=r["question"], reference=r["reference"],
                                                                answer=r.get("answer") or ""),
                                max_tokens=max_tokens, temperature=0.0, json_schema=SCHEMA, prefill='{"score": ',
                                stop=["}"], seed=n))
    grades: list[int | None] = []
    rejects: list[Reject] = []
    for row, res in zip(rows, backend.generate(reqs)):
        grade = grade_of(res.text) if res.ok else None
        grades.append(grade)
        if grade is None:
            rejects.append(_ungraded(row, res))
    return grades, rejects


def grade_of(text: str | None) -> int | None:
    """The score 1-5 of a judge reply, or None when it holds none (no JSON, no score, out of range)."""
    from infuse.operators.synthesize.jsonrepair import parse_json_loose

    try:
        value = parse_json_loose(text)
        score = int(value.get("score")) if isinstance(value, dict) else None
    except Exception:  # a malformed reply leaves its answer ungraded, never the run
        return None
    return score if score is not None and 1 <= score <= 5 else None


def _ungraded(row: dict[str, Any], res: ChatResult) -> Reject:
    """Why one answer has no grade: the request failed, or its reply held no grade."""
    where = {"model": row.get("model"), "item_id": row.get("item_id")}
    rid = row.get("item_id") or res.id
    if not res.ok:
        return Reject(rid, "judge_failed", f"{row.get('model')}: the judge request failed: {res.error_kind}: "
                                           f"{res.error}", where)
    return Reject(rid, "judge_unreadable", f"{row.get('model')}: the judge's reply holds no grade 1-5",
                  {**where, "raw": (res.text or "")[:500]})
