"""Each registered step as a Prefect task.

The flow computes a step's cache key (it knows the inputs' hashes) and passes
it in; Prefect's cache record is keyed by it. The task body imports the
step's module first (a Dask or Ray worker may not have it yet), then runs the
step through `Step.execute`. Retries, refresh and result storage are set by
the flow per run.
"""
from __future__ import annotations

import importlib
from typing import Any

from infuse.storage import ArtifactRef, ArtifactStore
from infuse.tasks.base import StepContext, get_step, load_plugin

GPU_LIMIT = "infuse-gpu"  # the global concurrency limit `infuse deploy` creates (deploy/deployments.py)

_TASKS: dict[str, Any] = {}


def cache_key_from_params(context: Any, parameters: dict[str, Any]) -> str:
    return f"infuse-{parameters['spec_name']}-{parameters['key']}"


def run_step(spec_name: str, key: str, root: str, cfg: dict[str, Any], inputs: dict[str, dict[str, Any]],
             runtime: dict[str, Any] | None = None) -> dict[str, Any]:
    """The task body: `runtime` (runner, workers, run flags) changes how work runs, never what it
    produces, so it is not part of the cache key."""
    from prefect import get_run_logger

    runtime = runtime or {}
    for plugin in runtime.get("plugins", []):
        load_plugin(plugin)
    importlib.import_module(runtime.get("step_module") or "infuse.flows.steps")
    step = get_step(spec_name)()
    refs = {name: ArtifactRef.from_dict(ref) for name, ref in inputs.items()}
    ctx = StepContext(step, key, ArtifactStore(root), cfg, refs, runtime, log=get_run_logger())
    if not step.gpu:
        return step.execute(ctx).to_dict()
    from prefect.concurrency.sync import concurrency

    # A slot of the `infuse-gpu` limit (`infuse deploy` creates it; without it, no wait): GPU steps of all
    # runs and workers queue instead of colliding on one device, whatever the task engine does with tags.
    with concurrency(GPU_LIMIT, occupy=1, strict=False, lease_duration=3600):
        return step.execute(ctx).to_dict()


def step_task(step_cls: type) -> Any:
    """The Prefect task of a step class (made once per step name and kept)."""
    task_ = _TASKS.get(step_cls.name)
    if task_ is None:
        from prefect import task

        task_ = task(run_step, name=step_cls.name, task_run_name=step_cls.name, cache_key_fn=cache_key_from_params,
                     persist_result=True, tags=["gpu"] if step_cls.gpu else ["cpu"])
        _TASKS[step_cls.name] = task_
    return task_
