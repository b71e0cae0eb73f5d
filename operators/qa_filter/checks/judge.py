"""judge: an LLM judges every assistant turn against its source, in one batch of requests.

The judge is advisory: a backend that fails, a failed request or an unreadable
verdict keeps the turn. A turn found unsupported is cut like an ungrounded one.
"""
from __future__ import annotations

from typing import Any

from infuse.operators.qa_filter.check import Check, CheckContext, Verdict
from infuse.operators.qa_filter.sample import Drop, Sample


def unsupported(result: Any, threshold: float) -> tuple[float, str] | None:
    """(score, reason) when a readable verdict finds the turn unsupported; None otherwise."""
    from infuse.operators.synthesize.jsonrepair import parse_json_loose

    if not result.ok:
        return None
    try:
        verdict = parse_json_loose(result.text)
    except Exception:  # an unreadable verdict keeps the turn
        return None
    if not isinstance(verdict, dict):
        return None
    try:
        score = float(verdict.get("score", 1.0 if verdict.get("grounded", True) else 0.0))
    except (TypeError, ValueError):
        return None
    if verdict.get("grounded") is False or score < threshold:
        return score, str(verdict.get("reason", ""))[:300]
    return None


class Judge(Check):
    name = "judge"
    order = 90

    @classmethod
    def wanted(cls, ctx: CheckContext) -> bool:
        return ctx.cfg.judge.enabled and ctx.backend is not None

    def verdicts(self, samples: list[Sample]) -> list[Verdict]:
        asks = self._requests(samples)
        self.info = {"requests": len(asks)}
        failed = self._first_unsupported(asks) if asks else {}
        return [self._drop(*failed[j]) if j in failed else None for j in range(len(samples))]

    def _requests(self, samples: list[Sample]) -> list[tuple[int, int, Any]]:
        """(sample position, turn, request) for every turn of every sample that has a source to judge by."""
        from infuse.operators.llm.base import ChatRequest
        from infuse.operators.prompts import load_prompt

        skip, opts = set(self.cfg.grounding.skip_strategies), self.cfg.judge
        out = []
        for j, s in enumerate(samples):
            src = None if s.strategy in skip else self.ctx.source(s)
            if not src:
                continue
            p = load_prompt("judge_grounding", s.row.get("lang") or "en")
            for k, (q, a) in enumerate(s.pairs):
                msgs = p.messages(source=src[: opts.max_source_chars], question=q, answer=a)
                out.append((j, k, ChatRequest(id=f"judge:{s.i}" + (f"#t{k}" if k else ""), messages=msgs,
                                              max_tokens=opts.max_tokens, temperature=0.0)))
        return out

    def _first_unsupported(self, asks: list[tuple[int, int, Any]]) -> dict[int, tuple[int, float, str]]:
        """sample position -> (its first unsupported turn, score, reason)."""
        try:
            results = self.ctx.backend.generate([req for _, _, req in asks])
        except Exception as e:  # a judge that cannot answer keeps every row (the judge is optional)
            self.info["error"] = f"{type(e).__name__}: {e}"[:300]
            return {}
        failed: dict[int, tuple[int, float, str]] = {}
        for (j, k, _), res in zip(asks, results):
            found = unsupported(res, self.cfg.judge.threshold)
            if found is not None and (j not in failed or k < failed[j][0]):
                failed[j] = (k, *found)
        return failed

    def _drop(self, turn: int, score: float, reason: str) -> Drop:
        return Drop("ungrounded", "the LLM judge found the answer unsupported",
                    {"score": score, "threshold": self.cfg.judge.threshold, "judge": True, "reason": reason}, turn=turn)
