"""The check contract of qa_filter: one small class per check, registered by being defined.

A check looks at samples and says of each: keep (None) or a Drop (reason,
message, detail, and from which turn). Everything else is done the same way
for every check by the runner (filter.py): the reject rows, cutting a dialogue
short, the counts in the step's stats. A check that judges one sample at a
time subclasses SampleCheck and writes `check`; one that needs the whole batch
(duplicates, the 3σ rule, one batch of LLM requests) writes `verdicts`.

Which checks run is the config's to say (`wanted`), in `order`: form 10,
language 20, dedup 30, length_outlier 40, grounding 50, citation 60, judge 90.
A check of a plug-in module (one the recipe's `plugins:` names) runs when its
name is in `extra_checks`; by default it comes after the rule checks and before
the LLM judge, which then is asked only about what every other check kept.
"""
from __future__ import annotations

from typing import Any, ClassVar

from infuse.operators.common.base import code_version
from infuse.operators.qa_filter.config import QAFilterConfig
from infuse.operators.qa_filter.sample import Drop, Sample
from infuse.operators.qa_filter.sources import Sources, lookup, source_text

Verdict = Drop | None
CHECKS: dict[str, type["Check"]] = {}


class CheckContext:
    """What a check may need besides the samples: the config, the texts they come from, the LLM judge."""

    def __init__(self, cfg: QAFilterConfig, sources: Sources | None = None, documents: Sources | None = None,
                 backend: Any = None) -> None:
        self.cfg = cfg
        self.chunk = lookup(sources)  # chunk_id -> text
        self.document = lookup(documents)  # doc_id -> text
        self.backend = backend
        self._sources: dict[int, str | None] = {}

    def source(self, s: Sample) -> str | None:
        """The sample's source text (its chunks'), looked up once per sample."""
        if s.i not in self._sources:
            self._sources[s.i] = source_text(s.row, self.chunk)
        return self._sources[s.i]


class Check:
    """Base of every check; see the module docstring."""

    name: ClassVar[str] = ""
    order: ClassVar[float] = 70.0

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if not cls.__dict__.get("name"):
            return  # an abstract helper class
        prev = CHECKS.get(cls.name)
        if prev is not None and prev.__module__ != cls.__module__:
            raise ValueError(f"check {cls.name!r} is defined twice: in {prev.__module__} and in {cls.__module__}")
        CHECKS[cls.name] = cls  # a module imported again replaces its own check

    def __init__(self, ctx: CheckContext) -> None:
        self.ctx = ctx
        self.cfg = ctx.cfg
        self.info: dict[str, Any] = {}  # what the check found, besides its counts (a bound, requests made)

    @classmethod
    def wanted(cls, ctx: CheckContext) -> bool:
        """Whether this run asks for the check; a plug-in's: when `extra_checks` names it."""
        return cls.name in ctx.cfg.extra_checks

    def verdicts(self, samples: list[Sample]) -> list[Verdict]:
        """One verdict per sample, in order."""
        raise NotImplementedError


class SampleCheck(Check):
    """A check that judges each sample on its own."""

    def check(self, s: Sample) -> Verdict:
        raise NotImplementedError

    def verdicts(self, samples: list[Sample]) -> list[Verdict]:
        return [self.check(s) for s in samples]


def unknown_checks(names: list[str]) -> list[str]:
    """Problems with `extra_checks`: names no loaded module defines."""
    known = ", ".join(sorted(CHECKS))
    return [f"extra_checks: no check named {n!r} (is its module in the recipe's plugins?); checks are: {known}"
            for n in names if n not in CHECKS]


def planned(ctx: CheckContext) -> list[Check]:
    """The checks this config runs, in order."""
    problems = unknown_checks(ctx.cfg.extra_checks)
    if problems:
        raise KeyError("; ".join(problems))
    wanted = [c for c in CHECKS.values() if c.wanted(ctx)]
    return [c(ctx) for c in sorted(wanted, key=lambda c: (c.order, c.name))]


def extra_check_code(names: list[str]) -> dict[str, Any]:
    """The source version of each extra check's module, for the step's cache key: editing a plug-in check
    reruns qa_filter, as editing a built-in one does."""
    found = [n for n in names if n in CHECKS]
    return {"extra_checks": {n: code_version(CHECKS[n].__module__) for n in found}} if found else {}
