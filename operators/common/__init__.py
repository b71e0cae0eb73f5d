"""Helpers every stage shares: the step-level contract (rejects, keys), models, languages, tokens, formats, data-juicer."""
