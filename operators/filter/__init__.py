"""Step `filter`: per-chunk stats from data-juicer filters, fixed and 3σ bounds, rejects and plots.

Import the names from here (`from infuse.operators.filter import QualityFilter`):
`from infuse.operators import filter` would shadow the builtin.
"""
from infuse.operators.filter.config import AutoBound, FilterConfig, FilterOpSpec
from infuse.operators.filter.quality import STAT_PREFIX, QualityFilter

__all__ = ["STAT_PREFIX", "AutoBound", "FilterConfig", "FilterOpSpec", "QualityFilter"]
