"""A qa_filter check of the tests' own, loaded through a recipe's `plugins:` like a user's check would be.

`placeholder` drops a sample whose answer still holds template text (TODO,
{{ ... }}): a first answer rejects the sample, a later one cuts the dialogue
before it. It runs only where the recipe's qa_filter lists it in `extra_checks`.
"""
from __future__ import annotations

from infuse.operators.qa_filter import Drop, Sample, SampleCheck, Verdict

MARKS = ("TODO", "{{")


class Placeholder(SampleCheck):
    name = "placeholder"
    order = 65  # after citation, before the LLM judge

    def check(self, s: Sample) -> Verdict:
        for k, (_, answer) in enumerate(s.pairs):
            found = [m for m in MARKS if m in answer]
            if found:
                return Drop("placeholder_answer", f"answer holds template text {found[0]!r}", {"marks": found},
                            turn=k)
        return None
