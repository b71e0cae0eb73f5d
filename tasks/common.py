"""What every step task shares: its spec, cache key, result record and UI report.

The cache key of a step hashes its name, the code version of the operators it
runs, its config section and the content hashes of its inputs. The flow also
forces a recompute when the step's output artifact is gone, so a deleted or
half-written output is never trusted.
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import TaskRunContext

from infuse.operators.base import code_version, stable_hash
from infuse.storage import ArtifactRef, ArtifactStore


def _versions(*dists: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for d in dists:
        try:
            out[d] = version(d)
        except PackageNotFoundError:
            out[d] = "absent"
    return out


LIBRARY_VERSIONS = _versions("py-data-juicer", "datasketch", "pypdf", "python-docx", "python-pptx",
                             "beautifulsoup4", "charset-normalizer", "jieba", "transformers", "pyarrow")


@dataclass(frozen=True)
class StepSpec:
    """A step of the pipeline: what it reads, what it writes and which code it runs."""

    name: str  # its code is tasks.<name>; that module's imports decide what goes into the cache key
    inputs: tuple[str, ...]  # artifact names it reads (from the last step that produced each)
    outputs: tuple[str, ...]  # artifact names it writes (besides "rejects")
    gpu: bool = False
    description: str = ""
    operators: tuple[str, ...] = ()  # modules it loads dynamically, which imports alone would not reveal

    def code_version(self) -> str:
        """Every operators/ and tasks/ module the step's task module imports, plus the library
        versions that shape its output (a data-juicer upgrade can change what a filter keeps)."""
        code = code_version(f"infuse.tasks.{self.name}", *self.operators, prefixes=("infuse.operators", "infuse.tasks"))
        return stable_hash({"code": code, "libs": LIBRARY_VERSIONS})[:16]


@dataclass
class StepResult:
    """What a step task returns (and Prefect caches): refs to its artifacts plus its stats."""

    step: str
    key: str
    outputs: dict[str, dict[str, Any]]
    rejects: dict[str, Any]
    stats: dict[str, Any] = field(default_factory=dict)

    def output(self, name: str) -> ArtifactRef:
        return ArtifactRef.from_dict(self.outputs[name])

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "key": self.key, "outputs": self.outputs, "rejects": self.rejects,
                "stats": self.stats}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StepResult":
        return cls(**d)


# LLM settings that change how calls are made, never what they produce: raising a
# timeout before --retry-failed must not throw the finished shards away.
LLM_RUNTIME_KEYS = {"concurrency", "timeout_s", "max_retries", "backoff_base_s", "backoff_max_s", "api_key_env",
                    "batch_size", "device", "gpu_memory_utilization", "tensor_parallel_size"}


def without_llm_runtime(cfg: dict[str, Any]) -> dict[str, Any]:
    if "llm" not in cfg:
        return cfg
    return {**cfg, "llm": {k: v for k, v in cfg["llm"].items() if k not in LLM_RUNTIME_KEYS}}


def step_key(spec: StepSpec, config: dict[str, Any], inputs_fingerprint: Any) -> str:
    """The content address of a step's output: same code, config and inputs -> same key."""
    return stable_hash({
        "step": spec.name,
        "code": spec.code_version(),
        "config": config,
        "inputs": inputs_fingerprint,
    })[:24]


def cache_key_from_params(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Prefect cache_key_fn: the flow computes the key; the task just uses it."""
    return f"infuse-{parameters['spec_name']}-{parameters['key']}"


def outputs_present(store: ArtifactStore, spec: StepSpec, key: str) -> bool:
    return all(store.committed(spec.name, key, n) is not None for n in (*spec.outputs, "rejects"))


class Timer:
    def __enter__(self) -> "Timer":
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *_: Any) -> None:
        self.seconds = time.perf_counter() - self.t0


def reason_counts(rejects: Iterable[dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(r["reason"] for r in rejects).most_common())


def publish_report(result: StepResult, store: ArtifactStore, *, rows_in: int, kept: int,
                   unit_in: str = "rows", unit_out: str = "rows", extra_md: str = "",
                   extra_tables: dict[str, list[dict[str, Any]]] | None = None) -> None:
    """Prefect UI artifacts for one step: counts by reason and a markdown summary with paths and hashes."""
    slug = result.step.replace("_", "-")  # Prefect artifact keys: lowercase letters, digits, dashes
    by_reason = result.stats.get("rejected_by_reason", {})
    rejected = sum(by_reason.values())
    rows = [{"metric": f"{unit_in} in", "count": rows_in}, {"metric": f"{unit_out} kept", "count": kept},
            {"metric": "rejected", "count": rejected}]
    rows += [{"metric": f"rejected: {r}", "count": n} for r, n in by_reason.items()]
    create_table_artifact(key=f"{slug}-counts", table=rows,
                          description=f"{result.step}: rows in / kept / rejected, by reason")
    lines = [f"## {result.step}", "", f"cache key `{result.key}`", "",
             "| artifact | rows | sha256 | path |", "|---|---|---|---|"]
    for name, ref in {**result.outputs, "rejects": result.rejects}.items():
        lines.append(f"| {name} | {ref['rows']} | `{ref['sha256'][:16]}` | `{store.display(ref['path'])}` |")
    timing = result.stats.get("wall_s")
    if timing is not None:
        lines += ["", f"wall time: {timing:.2f} s"]
    if extra_md:
        lines += ["", extra_md]
    create_markdown_artifact(key=f"{slug}-summary", markdown="\n".join(lines),
                             description=f"{result.step}: outputs, hashes, paths")
    for key, table in (extra_tables or {}).items():
        if table:
            create_table_artifact(key=f"{slug}-{key}", table=table)




def step_task(spec: StepSpec) -> Callable[[Callable[..., StepResult]], Any]:
    """Wrap a plain `run(store, key, cfg, inputs, runtime) -> StepResult` into the step's Prefect task.

    The wrapper owns what every step does the same way: the cache key, timing
    and the UI report. The flow sets retries, refresh and result storage per run.
    """
    from prefect import task

    def decorate(run: Callable[..., StepResult]) -> Any:
        @task(name=spec.name, task_run_name=spec.name, cache_key_fn=cache_key_from_params,
              persist_result=True, tags=["gpu"] if spec.gpu else ["cpu"])
        def _task(spec_name: str, key: str, root: str, cfg: dict[str, Any],
                  inputs: dict[str, dict[str, Any]], runtime: dict[str, Any] | None = None) -> dict[str, Any]:
            # `runtime` (runner kind, workers) changes where work runs, never what it
            # produces, so it is not part of the cache key.
            store = ArtifactStore(root)
            store.invalidate(spec_name, key)  # from here until commit, this key's outputs are not complete
            refs = {name: ArtifactRef.from_dict(ref) for name, ref in inputs.items()}
            with Timer() as timer:
                result = run(store, key, cfg, refs, runtime or {})
            result.stats["wall_s"] = round(timer.seconds, 3)
            report = result.stats.pop("_report", {})
            # the same three counts for every step, for the manifest: in, kept, rejected (+ by reason)
            result.stats.setdefault("rows_in", report.get("rows_in"))
            result.stats.setdefault("kept", report.get("kept"))
            result.stats["units"] = f"{report.get('unit_in', 'rows')} -> {report.get('unit_out', 'rows')}"
            publish_report(result, store, **report)
            return result.to_dict()

        _task.spec = spec  # type: ignore[attr-defined]
        _task.run_plain = run  # type: ignore[attr-defined]
        return _task

    return decorate


def finish(store: ArtifactStore, spec: StepSpec, key: str, outputs: dict[str, ArtifactRef],
           rejects: list[dict[str, Any]], stats: dict[str, Any]) -> StepResult:
    """Write the rejects artifact and assemble the StepResult (rejects are written even when empty)."""
    rej_ref = store.write_rejects(spec.name, key, rejects)
    stats = {**stats, "rejected": len(rejects), "rejected_by_reason": reason_counts(rejects)}
    return StepResult(spec.name, key, {n: r.to_dict() for n, r in outputs.items()}, rej_ref.to_dict(), stats)
