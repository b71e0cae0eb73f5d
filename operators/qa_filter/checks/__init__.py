"""The built-in checks of qa_filter, one module each; importing this package registers them."""
from infuse.operators.qa_filter.checks import citation, dedup, form, grounding, judge, language, length  # noqa: F401
