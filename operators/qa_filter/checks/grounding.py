"""grounding: every answer is supported by the sample's source text (a lexical score, no model)."""
from __future__ import annotations

from infuse.operators.qa_filter.check import CheckContext, SampleCheck, Verdict
from infuse.operators.qa_filter.grounding import grounding_score
from infuse.operators.qa_filter.sample import Drop, Sample


class Grounding(SampleCheck):
    name = "grounding"
    order = 50

    @classmethod
    def wanted(cls, ctx: CheckContext) -> bool:
        return ctx.cfg.grounding.enabled

    def check(self, s: Sample) -> Verdict:
        g = self.cfg.grounding
        if s.strategy in g.skip_strategies:
            return None
        src = self.ctx.source(s)
        if src is None:
            return Drop("no_source", "no source text for this sample's chunks",
                        {"chunk_ids": list(s.row.get("source_chunk_ids") or [])})
        for k, (_, a) in enumerate(s.pairs):
            score = grounding_score(a, src, g.method, g.n)
            if score < g.threshold:
                return Drop("ungrounded", f"answer not supported by its source ({g.method} {score:.2f})",
                            {"score": round(score, 4), "threshold": g.threshold, "method": g.method}, turn=k)
        return None
