"""language: a sample keeps to one language (operators.qa_filter.language says how that is judged)."""
from __future__ import annotations

from infuse.operators.qa_filter.check import CheckContext, SampleCheck, Verdict
from infuse.operators.qa_filter.language import check_language
from infuse.operators.qa_filter.sample import Drop, Sample


class Language(SampleCheck):
    name = "language"
    order = 20

    @classmethod
    def wanted(cls, ctx: CheckContext) -> bool:
        return ctx.cfg.language.enabled

    def check(self, s: Sample) -> Verdict:
        _, problem = check_language(s.messages(), lambda: self._quotable(s), self.cfg.language)
        if problem is None:
            return None
        return Drop("mixed_language", f"mixed-language sample: {problem['why']}", problem)

    def _quotable(self, s: Sample) -> str:
        """What the sample may quote: its document (else its source chunks), and any RAFT distractors shown."""
        extra = [self.ctx.chunk(c) or "" for c in s.meta.get("distractor_chunk_ids") or []]
        doc_id = s.row.get("doc_id")
        own = self.ctx.document(doc_id) if doc_id else None
        return "\n".join([own or self.ctx.source(s) or "", *extra])
