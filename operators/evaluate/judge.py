"""Optional LLM judge: a 1-5 grade of an answer against its reference, through the synthesis backend.

The rubric is the `judge_answer` prompt (saved with the report). A reply that
fails or does not parse leaves that answer ungraded (None), never the run.
"""
from __future__ import annotations

from typing import Any

from infuse.operators.llm import ChatRequest, LLMBackend

SCHEMA: dict[str, Any] = {"type": "object", "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5},
                                                           "reason": {"type": "string"}}, "required": ["score"]}


def rubric(lang: str = "en") -> str:
    from infuse.operators.prompts import load_prompt

    p = load_prompt("judge_answer", lang)
    return f"{p.version}\n\n{p.system}"


def judge(rows: list[dict[str, Any]], backend: LLMBackend, max_tokens: int = 96) -> list[int | None]:
    """rows: dicts with question, reference, answer, lang. Returns a grade (or None) per row."""
    from infuse.operators.prompts import load_prompt
    from infuse.operators.synthesize.jsonrepair import parse_json_loose

    prompts: dict[str, Any] = {}
    reqs = []
    for n, r in enumerate(rows):
        p = prompts.setdefault(r.get("lang") or "en", load_prompt("judge_answer", r.get("lang") or "en"))
        reqs.append(ChatRequest(id=str(n), messages=p.messages(question=r["question"], reference=r["reference"],
                                                                answer=r.get("answer") or ""),
                                max_tokens=max_tokens, temperature=0.0, json_schema=SCHEMA, prefill='{"score": ',
                                stop=["}"], seed=n))
    out: list[int | None] = []
    for res in backend.generate(reqs):
        grade = None
        if res.ok:
            try:
                value = parse_json_loose(res.text)
                s = int(value.get("score")) if isinstance(value, dict) else None
                grade = s if s is not None and 1 <= s <= 5 else None
            except Exception:
                grade = None
        out.append(grade)
    return out
