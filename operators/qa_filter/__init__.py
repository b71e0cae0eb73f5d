"""qa_filter: drop bad synthetic samples, each with a reason, by a list of small checks (check.py).

Reasons: empty, malformed, answer_too_short, mixed_language (detail: the turn
and the prose runs of the other language, or the languages of the turns),
duplicate_question (detail: kept_sample_id), answer_length_outlier (detail:
value, bounds; 3 sigma rule of design note 000), ungrounded (detail: score,
threshold), no_source, wrong_citation (a RAFT answer that does not name its
source document), and ungrounded with judge=true when the optional LLM judge
disagrees. Every assistant turn of a dialogue is checked: a failing later turn
cuts the dialogue before it, with an `<reason>_turn` reject (id
`<sample_id>#turn<k>`). A plug-in adds a check by defining a Check subclass;
`extra_checks` turns it on.
"""
from infuse.operators.qa_filter.check import CHECKS, Check, CheckContext, SampleCheck, Verdict
from infuse.operators.qa_filter.config import GroundingOptions, JudgeOptions, QAFilterConfig
from infuse.operators.qa_filter.filter import FilterResult, filter_samples, qa_filter
from infuse.operators.qa_filter.grounding import containment, grounding_score, rouge_l
from infuse.operators.qa_filter.language import LanguageOptions, check_language
from infuse.operators.qa_filter.sample import Drop, Sample, exchanges

__all__ = ["QAFilterConfig", "GroundingOptions", "JudgeOptions", "LanguageOptions", "qa_filter", "filter_samples",
           "FilterResult", "exchanges", "check_language", "containment", "rouge_l",
           "grounding_score", "CHECKS", "Check", "CheckContext", "SampleCheck", "Drop", "Sample", "Verdict"]
