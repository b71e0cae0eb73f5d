"""Evaluation: the question set, who answers it, the scores and the report; `run.evaluate` is the entry point
(the evaluate step lends it the framework's memo, progress bars and work dir)."""
