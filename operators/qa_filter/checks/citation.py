"""citation: a RAFT answer names the document that holds it (meta.cite), and no distractor."""
from __future__ import annotations

import re

from infuse.operators.qa_filter.check import CheckContext, SampleCheck, Verdict
from infuse.operators.qa_filter.sample import Drop, Sample

_CITE = re.compile(r"\[\s*(?:文档|Document|Doc)?\s*(\d{1,3})\s*\]|(?:文档|[Dd]ocument)\s*\[?(\d{1,3})")


def cited_labels(answer: str, n_labels: int) -> set[int]:
    """The document labels an answer cites: [2], [文档2], 文档2, Document 2 (only 1..n_labels count)."""
    found = {int(a or b) for a, b in _CITE.findall(answer or "")}
    return {k for k in found if 1 <= k <= n_labels}


class Citation(SampleCheck):
    name = "citation"
    order = 60

    @classmethod
    def wanted(cls, ctx: CheckContext) -> bool:
        return True  # only RAFT samples carry meta.cite; the rest pass

    def check(self, s: Sample) -> Verdict:
        cite = s.meta.get("cite")
        if not isinstance(cite, int):
            return None
        named = cited_labels(s.pairs[0][1], int(s.meta.get("labels") or cite))
        wrong = sorted(named - {cite})
        if cite in named and not wrong:
            return None
        return Drop("wrong_citation", f"the answer should cite [{cite}]" +
                    (f" and no distractor, but cites {wrong}" if wrong else " but does not"),
                    {"expected": cite, "cited": sorted(named)})
