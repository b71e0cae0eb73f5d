"""qa_filter: drop bad synthetic QA rows, each with a reason.

Reasons: empty, malformed, answer_too_short, duplicate_question (detail:
kept_sample_id), answer_length_outlier (detail: value, bounds; 3 sigma rule of
design note 000), ungrounded (detail: score, threshold), no_source, and
ungrounded with judge=true when the optional LLM judge disagrees.
"""
from infuse.operators.qa_filter.filter import GroundingOptions, JudgeOptions, QAFilterConfig, qa_filter
from infuse.operators.qa_filter.grounding import containment, grounding_score, rouge_l

__all__ = ["QAFilterConfig", "GroundingOptions", "JudgeOptions", "qa_filter", "containment", "rouge_l",
           "grounding_score"]
