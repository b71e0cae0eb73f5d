"""The QA filter: the planned checks over a table of samples, in order; see the package docstring for the reasons."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from infuse.operators.common.base import Reject
from infuse.operators.qa_filter import checks as _builtin  # noqa: F401  (registers the built-in checks)
from infuse.operators.qa_filter.check import Check, CheckContext, planned
from infuse.operators.qa_filter.config import QAFilterConfig
from infuse.operators.qa_filter.sample import Sample
from infuse.operators.qa_filter.sources import Sources


@dataclass
class FilterResult:
    """Kept rows, one Reject per dropped row or turn, and per check what it saw and did."""

    kept: pa.Table
    rejects: list[Reject]
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)


def filter_samples(qa: pa.Table, sources: Sources | None, cfg: QAFilterConfig | None = None,
                   backend: Any = None, documents: Sources | None = None) -> FilterResult:
    """Run the config's checks over `qa`; kept rows keep the schema and order (a dialogue may lose its last turns).

    `sources` maps chunk_id -> chunk text (dict or function); the grounding
    source of a row is the text of its source_chunk_ids. `documents` maps
    doc_id -> the document's text, which the language check lets a sample quote
    (default: its source chunks). `backend` (an LLMBackend) is used only when
    cfg.judge.enabled. Each check sees what the ones before it kept.
    """
    ctx = CheckContext(cfg or QAFilterConfig(), sources, documents, backend)
    alive = [Sample.from_row(i, row) for i, row in enumerate(qa.to_pylist())]
    rejects: list[Reject] = []
    stats: dict[str, dict[str, Any]] = {}
    for check in planned(ctx):
        alive, stats[check.name] = _run(check, alive, rejects)
    return FilterResult(pa.Table.from_pylist([s.kept_row() for s in alive], schema=qa.schema), rejects, stats)


def qa_filter(qa: pa.Table, sources: Sources | None, cfg: QAFilterConfig | None = None,
              backend: Any = None, documents: Sources | None = None) -> tuple[pa.Table, list[Reject]]:
    """(kept rows, rejects) of `filter_samples`."""
    result = filter_samples(qa, sources, cfg, backend, documents)
    return result.kept, result.rejects


def _run(check: Check, samples: list[Sample], rejects: list[Reject]) -> tuple[list[Sample], dict[str, Any]]:
    """One check over the samples: its rejects appended, the samples it keeps (some cut short), its counts."""
    verdicts = check.verdicts(samples) if samples else []
    if len(verdicts) != len(samples):
        raise ValueError(f"check {check.name} gave {len(verdicts)} verdicts for {len(samples)} samples")
    kept, cut = [], 0
    for s, verdict in zip(samples, verdicts):
        if verdict is not None:
            rejects.append(s.take(verdict))
            if not verdict.turn:
                continue
            cut += 1
        kept.append(s)
    return kept, {"in": len(samples), "dropped": len(samples) - len(kept), "cut": cut, **check.info}
