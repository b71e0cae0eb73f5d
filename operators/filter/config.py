"""Recipe section `filter`: stat ops by data-juicer (or infuse) name, each with fixed and/or 3σ bounds."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from infuse.operators.common.base import Strict

from infuse.operators.clean.config import OpSpec


class AutoBound(Strict):
    """Bounds from the corpus: [center − k·spread, center + k·spread].

    method sigma: mean and population std (the 3σ rule); mad: median and
    1.4826·MAD (robust to the outliers being hunted). scale log: fit on
    log1p(x), map back with expm1 (for skewed, non-negative stats).
    side: which bounds to set. Below `min_samples` values the auto bound is
    skipped (a σ from a handful of rows means nothing).
    """

    k: float = Field(3.0, gt=0)
    scale: Literal["linear", "log"] = "linear"
    method: Literal["sigma", "mad"] = "sigma"
    side: Literal["both", "low", "high"] = "both"
    min_samples: int = Field(30, ge=2)


class FilterOpSpec(OpSpec):
    """A stat op. Bounds per side: `min`/`max` if set, else `auto`, else the dj
    op's own min_*/max_* params from `params`, else (no bound set at all) the
    dj op's defaults, so a data-juicer recipe behaves as it does in dj.
    Set `min: null` / `max: null` to keep the stat without bounding it."""

    stat: str | None = None  # which stat key to bound when an op makes several
    column: str | None = None  # stat name in outputs (default: the stat key); column is stat_<name>
    min: float | None = None
    max: float | None = None
    auto: AutoBound | None = None


class FilterConfig(Strict):

    ops: list[FilterOpSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names(self) -> "FilterConfig":
        from infuse.operators.common import dj
        from infuse.operators.filter.ops import INFUSE_FILTERS

        for op in self.ops:
            dj.check_op_name(op.name, "filter", extra=list(INFUSE_FILTERS))
            if op.name in INFUSE_FILTERS:
                unknown = set(op.params) - INFUSE_FILTERS[op.name][2]
                if unknown:
                    raise ValueError(f"{op.name}: unknown params {sorted(unknown)}")
        return self

    @classmethod
    def default(cls) -> "FilterConfig":
        """The design notes' filters, sized for ~500-char chunks in Chinese and English.

        Deviations from the notes' dj thresholds (which are per document):
        alnum max 0.8 dropped (CJK characters count as alnum; Chinese prose is
        ~0.9); line lengths, token ratio (Gemma tokenizer, not pythia) and
        word count use 3σ bounds; char repetition keeps max 0.3 but not min
        0.05 (a chunk without repeats has ratio 0); text length min 10.
        """
        log = AutoBound(scale="log")
        return cls(
            ops=[
                FilterOpSpec(name="alphanumeric_filter", params={"tokenization": False}, min=0.4, max=None),
                FilterOpSpec(name="alphanumeric_filter", params={"tokenization": True}, auto=log),
                FilterOpSpec(name="average_line_length_filter", auto=log),
                FilterOpSpec(
                    name="character_repetition_filter", params={"rep_len": 10}, min=None, max=0.3, skip_kinds=["code"]
                ),
                FilterOpSpec(name="maximum_line_length_filter", auto=AutoBound(scale="log", side="high")),
                FilterOpSpec(name="text_length_filter", min=10, max=None),
                FilterOpSpec(name="infuse_words_num", auto=AutoBound(scale="log", side="low")),
                FilterOpSpec(
                    name="infuse_word_repetition", params={"rep_len": 10}, min=None, max=0.1, skip_kinds=["code"]
                ),
            ]
        )
