"""Recipe section `qa_filter`: which checks run and their thresholds."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from infuse.operators.common.base import Strict
from infuse.operators.qa_filter.language import LanguageOptions


class GroundingOptions(Strict):
    enabled: bool = True
    method: Literal["ngram", "rougel", "max"] = "ngram"
    n: int = Field(2, ge=1, le=6, description="token n-gram size (a token is a CJK char or a Latin word)")
    threshold: float = Field(0.3, ge=0, le=1)
    # facts: the answer restates a value found verbatim in the document (its span), in a template sentence
    skip_strategies: list[str] = Field(default_factory=lambda: ["identity", "code_tasks", "log_tasks", "facts"],
                                       description="base strategies whose answers are not meant to copy a source")


class JudgeOptions(Strict):
    enabled: bool = False
    threshold: float = Field(0.5, ge=0, le=1)
    max_source_chars: int = Field(4000, ge=200)
    max_tokens: int = Field(128, ge=16)


class QAFilterConfig(Strict):
    min_answer_chars: int = Field(8, ge=0, description="floor: shorter answers are dropped")
    sigma: float = Field(3.0, gt=0, description="answer lengths beyond mean +/- sigma*std are outliers")
    min_rows_for_sigma: int = Field(20, ge=3, description="fewer rows: no outlier test")
    dedup: bool = True
    dedup_threshold: float = Field(0.85, gt=0, le=1, description="MinHash Jaccard of question shingles")
    num_perm: int = Field(128, ge=16)
    shingle: int = Field(3, ge=1)
    grounding: GroundingOptions = GroundingOptions()
    language: LanguageOptions = LanguageOptions()
    judge: JudgeOptions = JudgeOptions()
    extra_checks: list[str] = Field(default_factory=list,
                                    description="more checks to run, by name: checks defined in a module the "
                                                "recipe's `plugins:` names")
