"""length_outlier: answer lengths beyond mean ± sigma·std of the batch (the 3σ rule of design note 000)."""
from __future__ import annotations

import math

from infuse.operators.qa_filter.check import Check, CheckContext, Verdict
from infuse.operators.qa_filter.sample import Drop, Sample


def answer_length(pairs: list[tuple[str, str]]) -> float:
    """A sample's answer length: its assistant turns' mean (the one answer of a QA pair)."""
    return sum(len(a) for _, a in pairs) / len(pairs)


class LengthOutlier(Check):
    name = "length_outlier"
    order = 40

    @classmethod
    def wanted(cls, ctx: CheckContext) -> bool:
        return True  # below min_rows_for_sigma it keeps everything

    def verdicts(self, samples: list[Sample]) -> list[Verdict]:
        if len(samples) < self.cfg.min_rows_for_sigma:
            self.info = {"skipped": f"{len(samples)} samples < min_rows_for_sigma {self.cfg.min_rows_for_sigma}"}
            return [None] * len(samples)
        lengths = [answer_length(s.pairs) for s in samples]
        mean = sum(lengths) / len(lengths)
        std = math.sqrt(sum((x - mean) ** 2 for x in lengths) / len(lengths))
        lo, hi = mean - self.cfg.sigma * std, mean + self.cfg.sigma * std
        self.info = {"mean": round(mean, 1), "std": round(std, 1), "bounds": [round(lo, 1), round(hi, 1)]}
        return [_outside(n, lo, hi) if std > 0 else None for n in lengths]


def _outside(n: float, lo: float, hi: float) -> Verdict:
    if lo <= n <= hi:
        return None
    return Drop("answer_length_outlier", f"answer length {n:.0f} outside [{lo:.0f}, {hi:.0f}]",
                {"value": n, "bounds": [round(lo, 1), round(hi, 1)]})
