"""Evaluation: the question set, who answers it, the scores and the report (see tasks/evaluate.py)."""
