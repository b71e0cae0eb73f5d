"""Preference pairs for DPO: prompts from the training questions, chosen = the grounded reference answer,
rejected = a model's own reply that fails the strict score against a fact's gold answer, or a fluent but
ungrounded one (see pairs.py), plus user-supplied pairs (formats.py), exported for other trainers (export.py).

The replies are sampled in sampling.py; run.py is the step's work (config.py its recipe section, report.py its
report)."""
from infuse.operators.preference.formats import read_user_pairs
from infuse.operators.preference.pairs import (PAIR_SCHEMA, SAMPLE_SCHEMA, Candidate, PairOptions, Prompt,
                                               build_pairs, choose_prompts, prompts_from_rows, question_key)

__all__ = ["PAIR_SCHEMA", "SAMPLE_SCHEMA", "Candidate", "PairOptions", "Prompt", "build_pairs", "choose_prompts",
           "prompts_from_rows", "question_key", "read_user_pairs"]
