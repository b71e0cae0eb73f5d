"""Each registered step as a Prefect task.

The flow computes a step's cache key (it knows the inputs' hashes) and passes
it in; Prefect's cache record is keyed by it. The task body imports the
step's module first (a Dask or Ray worker may not have it yet), then runs the
step through `Step.execute`, taking a slot of the `infuse-gpu` limit first
when `uses_gpu(cfg)` says this run of it uses the GPU; on a cluster's worker,
the run's stop marker sets the worker's STOP while the step runs. Retries, refresh and
result storage are set by the flow per run.
"""
from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from infuse.operators.common.base import STOP, Interrupted
from infuse.storage import ArtifactRef, ArtifactStore
from infuse.storage.runstate import StopMarker
from infuse.tasks.framework.step import Step, StepContext, get_step, load_plugin

GPU_LIMIT = "infuse-gpu"  # the global concurrency limit `infuse deploy` creates (deploy/deployments.py)
INTERRUPTED = "Interrupted"  # the name of the Cancelled state a stopped step and run end in
MARKER_POLL_S = 1.0  # how often a step on a cluster's worker looks for its run's stop marker

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
    with watch_stop_marker(StopMarker.from_runtime(runtime)):  # its STOP still set while the error is judged
        try:
            return _execute(step, ctx, cfg)
        except Exception as e:
            if not (isinstance(e, Interrupted) or STOP.is_set()):
                raise
            return _interrupted(ctx, spec_name, e)


@contextmanager
def watch_stop_marker(marker: StopMarker | None, every_s: float = MARKER_POLL_S) -> Iterator[None]:
    """While a step runs on a cluster's worker, its run's stop marker sets this process's STOP: the long loops
    of one task (synthesis waves, sampling, the training launcher), which check STOP and not the marker, stop
    too, as they do in the flow's process. STOP is cleared again after, if it was set here (a worker may run
    later runs' steps)."""
    if marker is None:
        yield
        return
    done, fired = threading.Event(), threading.Event()

    def poll() -> None:
        while not done.wait(every_s):
            try:
                requested = marker.requested()
            except Exception:  # the storage did not answer this time: ask again
                continue
            if requested:
                if not STOP.is_set():
                    fired.set()
                    STOP.set()
                return

    watcher = threading.Thread(target=poll, name="infuse-stop-marker", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join(timeout=every_s + 5)
        if fired.is_set():
            STOP.clear()


def _execute(step: Step, ctx: StepContext, cfg: dict[str, Any]) -> dict[str, Any]:
    """Run the step; one that uses the GPU first takes a slot of the `infuse-gpu` limit (`infuse deploy` creates
    it; without it, no wait), so GPU steps of all runs and workers queue instead of colliding on one device,
    whatever the task engine does with tags."""
    if not step.uses_gpu(cfg) or not gpu_limit_exists():
        return step.execute(ctx).to_dict()
    from prefect.concurrency.sync import concurrency

    with concurrency(GPU_LIMIT, occupy=1, strict=False, lease_duration=3600):
        return step.execute(ctx).to_dict()


def _interrupted(ctx: StepContext, spec_name: str, e: Exception) -> Any:
    """The run is stopping (SIGTERM, Ctrl-C): what the step finished is committed (shards, checkpoints) and a
    re-run resumes it. An end of the run's choosing, not a failure: no retry, no traceback, no cache record."""
    from prefect.transactions import get_transaction

    txn = get_transaction()
    if txn is not None:
        txn.write_on_commit = False
    ctx.log.warning("%s: interrupted: %s", spec_name, e)
    return interrupted_state(f"{spec_name}: {e}")


def interrupted_state(message: str) -> Any:
    """The state a step's task run and the flow run end in when the run is stopped: Cancelled, named
    Interrupted (Prefect's own Cancelled is a stop asked for in the UI; Failed and Crashed are not ours)."""
    from prefect.states import Cancelled

    return Cancelled(name=INTERRUPTED, message=message)


def gpu_limit_exists() -> bool:
    """Whether the server has the `infuse-gpu` limit (`infuse deploy` creates it): a run that was not
    deployed does not ask for it, so Prefect does not warn that it does not exist."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            client.read_global_concurrency_limit_by_name(GPU_LIMIT)
    except ObjectNotFound:
        return False
    except Exception:  # the API cannot say: let the limit's own call decide (it does not fail without one)
        return True
    return True


class _InterruptedIsNoError(logging.Filter):
    """The task engine logs any final state but Completed at ERROR; Interrupted is no error."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and str(record.msg).startswith(f"Finished in state {INTERRUPTED}("):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


logging.getLogger("prefect.task_runs").addFilter(_InterruptedIsNoError())


def step_task(step_cls: type[Step], cfg: dict[str, Any] | None = None) -> Any:
    """The Prefect task of a step class (made once per step name and kept), tagged `gpu` when this run of it
    uses the GPU (`uses_gpu(cfg)`; without a cfg, the class's `gpu`), else `cpu`: a work pool can route by it."""
    task_ = _TASKS.get(step_cls.name)
    if task_ is None:
        from prefect import task

        task_ = task(run_step, name=step_cls.name, task_run_name=step_cls.name, cache_key_fn=cache_key_from_params,
                     persist_result=True)
        _TASKS[step_cls.name] = task_
    gpu = step_cls().uses_gpu(cfg) if cfg is not None else step_cls.gpu
    return task_.with_options(tags=["gpu"] if gpu else ["cpu"])
