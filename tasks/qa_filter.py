"""qa_filter: drop empty, malformed, duplicate, length-outlier and ungrounded samples, each with a reason."""
from __future__ import annotations

from typing import Any

from infuse.operators.llm import make_backend
from infuse.operators.qa_filter import QAFilterConfig, qa_filter as run_qa_filter
from infuse.storage import ArtifactRef, ArtifactStore
from infuse.tasks.common import StepResult, StepSpec, finish, step_task, without_llm_runtime

SPEC = StepSpec(
    name="qa_filter",
    inputs=("qa", "chunks"),
    outputs=("qa",),
    description="reject empty/malformed, duplicate questions (MinHash), 3σ answer lengths, ungrounded answers",
)


def key_config(cfg: dict[str, Any]) -> dict[str, Any]:
    return without_llm_runtime(cfg)


@step_task(SPEC)
def qa_filter(store: ArtifactStore, key: str, cfg: dict[str, Any], inputs: dict[str, ArtifactRef],
              runtime: dict[str, Any]) -> StepResult:
    config = QAFilterConfig.model_validate({k: v for k, v in cfg.items() if k != "llm"})
    chunks = store.read(inputs["chunks"], columns=["chunk_id", "text"])
    sources = dict(zip(chunks.column("chunk_id").to_pylist(), chunks.column("text").to_pylist()))
    judge = make_backend(cfg["llm"]) if config.judge.enabled else None
    qa = store.read(inputs["qa"])
    kept, rejects = run_qa_filter(qa, sources, config, backend=judge)
    out = store.write_table(SPEC.name, key, "qa", kept, qa.schema)
    by_strategy: dict[str, dict[str, int]] = {}
    for s in qa.column("strategy").to_pylist():
        by_strategy.setdefault(s, {"in": 0, "kept": 0})["in"] += 1
    for s in kept.column("strategy").to_pylist():
        by_strategy[s]["kept"] += 1
    stats = {"rows_in": qa.num_rows, "kept": kept.num_rows, "by_strategy": by_strategy,
             "_report": {"rows_in": qa.num_rows, "kept": kept.num_rows, "unit_in": "samples", "unit_out": "samples",
                         "extra_tables": {"by-strategy": [{"strategy": k, **v} for k, v in sorted(by_strategy.items())]}}}
    return finish(store, SPEC, key, {"qa": out}, [r.to_row(SPEC.name) for r in rejects], stats)
