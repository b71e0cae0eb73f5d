"""Step `filter`: per-chunk stats from data-juicer filters, fixed and 3σ bounds, rejects and plots.

Named `quality` (not `filter`) so `from operators import quality` does not shadow the builtin.
"""
from infuse.operators.filter.config import AutoBound, FilterConfig, FilterOpSpec
from infuse.operators.filter.quality import STAT_PREFIX, QualityFilter

__all__ = ["STAT_PREFIX", "AutoBound", "FilterConfig", "FilterOpSpec", "QualityFilter"]
