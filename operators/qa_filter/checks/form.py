"""form: the messages have a usable shape, no turn is empty, and every answer reaches the floor.

The first check: every later one relies on well-formed, non-empty exchanges.
One check, not three, so a row's reject comes in row order whichever of the
three it fails.
"""
from __future__ import annotations

from infuse.operators.qa_filter.check import CheckContext, SampleCheck, Verdict
from infuse.operators.qa_filter.sample import Drop, Sample

MALFORMED = "messages must be user/assistant turns in turn, after any system message, ending with the assistant"


class Form(SampleCheck):
    name = "form"
    order = 10

    @classmethod
    def wanted(cls, ctx: CheckContext) -> bool:
        return True

    def check(self, s: Sample) -> Verdict:
        if not s.well_formed:
            return Drop("malformed", MALFORMED)
        if any(not q.strip() or not a.strip() for q, a in s.pairs):
            return Drop("empty", "empty question or answer")
        return self._too_short(s)

    def _too_short(self, s: Sample) -> Verdict:
        """The first answer under min_answer_chars: a later one cuts the dialogue before it."""
        floor = self.cfg.min_answer_chars
        for k, (_, a) in enumerate(s.pairs):
            n = len(a.strip())
            if n < floor:
                return Drop("answer_too_short", f"answer has {n} chars, floor {floor}", {"value": n, "floor": floor},
                            turn=k)
        return None
