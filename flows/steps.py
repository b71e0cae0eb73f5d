"""The ordered list of pipeline steps. A new step is one task module plus one line here."""
from __future__ import annotations

from typing import Any

from infuse.tasks import chunk, clean, dedup, parse, qa_filter, synthesize
from infuse.tasks import filter as filter_step

# (task module, Prefect task) in pipeline order. Each module has SPEC and may have
# fingerprint(cfg) when its inputs are not artifacts (parse reads a folder).
STEPS: list[tuple[Any, Any]] = [
    (parse, parse.parse),
    (chunk, chunk.chunk),
    (clean, clean.clean),
    (filter_step, filter_step.filter_),
    (dedup, dedup.dedup),
    (synthesize, synthesize.synthesize),
    (qa_filter, qa_filter.qa_filter),
]


def step_names() -> list[str]:
    return [m.SPEC.name for m, _ in STEPS]


def get_step(name: str) -> tuple[Any, Any]:
    for module, task in STEPS:
        if module.SPEC.name == name:
            return module, task
    raise KeyError(f"unknown step {name!r}; steps are: {', '.join(step_names())}")
