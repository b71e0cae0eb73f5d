"""The infuse flow: one cached Prefect task per step, run as a DAG wired by artifact name.

Each step's output lives at a content address (its cache key). A step whose
key is unchanged and whose output is still committed comes back Cached; one
whose output was deleted or torn is recomputed. A step starts as soon as the
steps it reads from are done, so independent steps run side by side on the
task runner. `--from`/`--only` take upstream outputs from the newest run that
still has them committed instead of running those steps. A stop (SIGTERM,
Ctrl-C) sets STOP for the steps in this process and, on a Dask or Ray runner,
writes the run's stop marker (storage/runstate.py) for the cluster's workers.
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.filesystems import LocalFileSystem, RemoteFileSystem
from prefect.futures import as_completed
from prefect.runtime import flow_run

from infuse.flows.graph import GraphError, Node, ancestors, build_graph, check_files, descendants
from infuse.flows.lineage import lineage_markdown
from infuse.flows.recipe import Recipe, RecipeError, load_recipe
from infuse.operators.common.base import STOP, stable_hash
from infuse.storage import ArtifactStore, RunManifest, StopMarker
from infuse.tasks.framework.step import Step, StepContext, StepResult
from infuse.tasks.framework.prefect_task import INTERRUPTED, interrupted_state, step_task


class StepFailed(RuntimeError):
    pass


class ClusterLost(RuntimeError):
    """The task runner's cluster has no live worker: the run cannot progress."""


class RunInterrupted(RuntimeError):
    """The run was stopped (SIGTERM, Ctrl-C) and ended Interrupted: finished work is committed, a re-run resumes."""


def _stop_signal(e: BaseException) -> bool:
    """A stop of the user's (SIGTERM, Ctrl-C), not one Prefect's runner asked for (a cancel from the UI: that
    one Prefect's engine handles itself)."""
    from prefect.exceptions import TerminationSignal

    if isinstance(e, KeyboardInterrupt):
        return True
    if not isinstance(e, TerminationSignal):
        return False
    try:
        from prefect._internal.control_listener import get_intent

        return get_intent() is None
    except Exception:
        return True


def _why(e: BaseException) -> str:
    sig = getattr(e, "signal", None)
    if sig is not None:
        return signal.Signals(sig).name
    if isinstance(e, KeyboardInterrupt):
        return "SIGINT"
    return f"{type(e).__name__}: {e}".rstrip(": ")


STOP_GRACE_S = float(os.environ.get("INFUSE_STOP_GRACE_S", "20"))  # how long a stop waits for running steps


def result_storage(store: ArtifactStore) -> Any:
    """Prefect results (the cache records) persist under the storage root too.

    Prefect wants result storage saved server-side, so the block is saved under
    a name derived from the root (idempotent).
    """
    base = store.url("_prefect")
    block: Any = LocalFileSystem(basepath=base) if store.is_local else RemoteFileSystem(basepath=store.display(base))
    block.save(f"infuse-results-{stable_hash(base)[:12]}", overwrite=True)
    return block


def _live_workers() -> int | None:
    """Live workers of this flow run's Dask or Ray cluster; None on the local runner (or when unknown)."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    runner = ctx.task_runner if ctx else None
    try:
        if type(runner).__name__ == "DaskTaskRunner" and runner._client is not None:
            return len(runner._client.scheduler_info().get("workers", {}))
        if type(runner).__name__ == "RayTaskRunner":
            import ray

            return sum(1 for n in ray.nodes() if n.get("Alive"))
    except Exception:
        return None
    return None


def _runner_kind() -> str:
    """The task runner this flow run really has (a deployment may run it without the recipe's runner)."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    name = type(ctx.task_runner).__name__ if ctx and ctx.task_runner else ""
    return {"DaskTaskRunner": "dask", "RayTaskRunner": "ray"}.get(name, "local")


def step_names(nodes: list[Node]) -> list[str]:
    return [n.name for n in nodes]


def plan_steps(nodes: list[Node], from_step: str | None, only: str | None,
               refresh: list[str] | None) -> tuple[list[str], set[str]]:
    """Which steps run (in order), and which recompute from scratch (refresh: that step and all it feeds)."""
    names = step_names(nodes)
    for n in [from_step, only, *(refresh or [])]:
        if n is not None and n not in names:
            raise ValueError(f"unknown or disabled step {n!r}; steps of this recipe are: {', '.join(names)}")
    run = names
    if from_step:
        run = names[names.index(from_step):]
    if only:
        run = [only]
    return run, descendants(nodes, set(refresh or []))


def plan_targets(nodes: list[Node]) -> tuple[set[str], list[str]]:
    """`infuse plan`: the first steps that can estimate their cost, and the steps to run (what they need)."""
    estimating = {n.name for n in nodes if type(n.step).estimate is not Step.estimate}
    targets = {t for t in estimating if not ancestors(nodes, {t}) & estimating}
    needed = ancestors(nodes, targets) | targets
    return targets, [n for n in step_names(nodes) if n in needed]


@flow(name="infuse", log_prints=True)
def infuse_pipeline(recipe_path: str, from_step: str | None = None, only: str | None = None,
                    refresh: list[str] | None = None, retry_failed: bool = False,
                    plan_only: bool = False) -> dict[str, Any]:
    """Run the recipe's steps; returns {step: StepResult dict}.

    retry_failed: steps that keep per-item state (synthesize) re-run only their failed items.
    plan_only: run what the estimating steps need, then return their estimates under "_estimates".
    """
    try:
        recipe = load_recipe(recipe_path)
        if recipe.runner.kind != "local" and _runner_kind() == "local":
            # a deployment's worker loads this flow as it is, without the recipe's Dask or Ray task runner:
            # run the steps on it, in a subflow run
            state = pipeline_for(recipe)(recipe_path, from_step, only, refresh, retry_failed, plan_only,
                                         return_state=True)
            return state if state.is_cancelled() else state.result()
        return Pipeline(recipe, recipe_path, from_step, only, refresh, {"retry_failed": retry_failed},
                        plan_only).run()
    except (RecipeError, GraphError) as e:  # a scheduled run of a recipe that went wrong: say what, no traceback
        return _recipe_failed(recipe_path, e)
    except BaseException as e:  # stopped before the steps started (Pipeline.run handles it after)
        if not _stop_signal(e):
            raise
        return interrupted_state(f"interrupted ({_why(e)}) before any step started")


def _recipe_failed(recipe_path: str, e: RecipeError | GraphError) -> Any:
    """The Failed state of a run whose recipe cannot run: every problem listed, before any step started."""
    from prefect.states import Failed

    problems = e.problems
    message = f"{recipe_path}: {len(problems)} problem(s), nothing ran:\n" + "\n".join(f"  - {p}" for p in problems)
    get_run_logger().error(message)
    return Failed(message=message)


class Pipeline:
    """One run of the flow: the scheduler that submits each step when its inputs are ready."""

    def __init__(self, recipe: Recipe, recipe_path: str, from_step: str | None, only: str | None,
                 refresh: list[str] | None, flags: dict[str, bool], plan_only: bool) -> None:
        STOP.clear()  # a new run (tests run many in one process)
        self.log = get_run_logger()
        self.recipe, self.flags, self.plan_only = recipe, flags, plan_only
        skipped: dict[str, str] = {}
        self.nodes = build_graph(recipe, skipped)
        check_files(recipe, self.nodes)
        for name, why in skipped.items():
            self.log.info(f"{name}: skipped (on by default, but it {why})")
        self.run_names, self.fresh = plan_steps(self.nodes, from_step, only, refresh)
        self.targets: set[str] = set()
        if plan_only:
            self.targets, self.run_names = plan_targets(self.nodes)
        self.store = ArtifactStore(recipe.storage)
        self.manifest = RunManifest(self.store, str(flow_run.id or "local"), recipe.model_dump(mode="json"),
                                    recipe_path)
        self.storage = result_storage(self.store)
        self.runtime = {"runner": _runner_kind(), "workers": recipe.runner.workers, "plugins": list(recipe.plugins),
                        "shard_rows": recipe.runner.shard_rows, **flags}
        self.stop_marker: StopMarker | None = None
        if self.runtime["runner"] != "local":  # a cluster's processes never see STOP: they check the marker
            self.stop_marker = StopMarker(self.store.root, self.manifest.run_id)
            self.runtime["stop_marker"] = self.stop_marker.to_runtime()
        self.done: dict[str, dict[str, Any]] = {}  # step -> its outputs' refs (run or reused)
        self.results: dict[str, dict[str, Any]] = {}
        self.summary: list[str] = []
        self.failed: tuple[str, str] | None = None

    # ---- the run ----------------------------------------------------------------
    def run(self) -> dict[str, Any] | Any:
        """The steps' results; or, when the run is stopped (SIGTERM, Ctrl-C), the Interrupted state the flow
        run ends in (Cancelled, not Failed or Crashed: nothing went wrong, and a re-run resumes)."""
        running: dict[int, Submitted] = {}
        try:
            self.manifest.save()  # at once: the host and pid tell a later run whether this one still lives
            mark_crashed_runs(self.store, self.manifest.run_id, self.log)
            self._reuse_upstream()
            pending = [n for n in self.nodes if n.name in self.run_names]
            while pending or running:
                self._start_ready(pending, running)
                if running:
                    future = self._next_done(running)
                    _track(running, self._finish(running.pop(id(future))))
        except BaseException as e:  # SIGTERM (Prefect raises TerminationSignal), Ctrl-C, or a bug here
            self._stop(running, e)
            if not _stop_signal(e):
                raise
            return interrupted_state(f"interrupted ({_why(e)}): finished work is committed; run again to resume")
        return self._conclude()

    def _start_ready(self, pending: list[Node], running: dict[int, "Submitted"]) -> None:
        """Submit each pending step whose upstream steps are done. After a failure nothing new starts
        (the running steps finish)."""
        busy = {p.name for p in pending} | {r.node.name for r in running.values()}
        for node in list(pending) if self.failed is None else []:
            if node.deps & busy:
                continue  # an upstream step has not finished yet
            pending.remove(node)
            missing = node.deps - set(self.done)
            if missing:
                self.failed = (node.name, f"needs the output of {sorted(missing)}, which no earlier run has "
                                          f"committed; run the whole pipeline once first")
                break
            _track(running, self._submit(node))
        if self.failed is not None:
            pending.clear()

    def _conclude(self) -> dict[str, Any]:
        """Save and publish how the run ended; raise StepFailed when a step failed."""
        if self.failed is not None:
            name, error = self.failed
            self.manifest.save(status="failed", error=f"{name}: {error}")
            self._publish_summary(f"**failed** at `{name}`: {error}")
            raise StepFailed(f"step {name} failed: {error}")
        self.manifest.save(status="partial" if self.plan_only else "completed")
        self._publish_summary("completed")
        return self.results

    def _next_done(self, running: dict[int, "Submitted"]) -> Any:
        """The next finished step. On a cluster, fail within a bounded time when it has no live worker
        (workers that die at start, or a lost cluster) instead of waiting forever."""
        futures = [r.future for r in running.values()]
        no_workers_since: float | None = None
        while True:
            try:
                return next(as_completed(futures, timeout=5))
            except TimeoutError:
                pass
            workers = _live_workers()
            if workers is None or workers > 0:
                no_workers_since = None
                continue
            no_workers_since = no_workers_since or time.monotonic()
            waited = time.monotonic() - no_workers_since
            if waited >= self.recipe.runner.worker_timeout_s:
                names = ", ".join(r.node.name for r in running.values())
                raise ClusterLost(f"the {self.runtime['runner']} cluster has had no live worker for {waited:.0f} s "
                                  f"while {names} waited to run; its workers died or never started (see their "
                                  f"logs above)")

    def _stop(self, running: dict[int, "Submitted"], why: BaseException) -> None:
        """Ask the running steps to stop (they commit what is finished and end between units of work),
        wait a bounded time for them, and save the manifest as it stands."""
        STOP.set()
        reason = _why(why)
        self._tell_workers(reason)
        self.log.warning("stopping (%s): %d running step(s) commit what is finished", reason, len(running))
        again: list[int] = []
        previous = _on_stop_signals(lambda sig, _frame: again.append(sig))  # a second signal cuts the wait short
        try:
            deadline = time.monotonic() + STOP_GRACE_S
            for sub in list(running.values()):
                while not again and not sub.future.state.is_final() and time.monotonic() < deadline:
                    try:
                        sub.future.wait(timeout=0.5)
                    except BaseException:
                        break
                if sub.future.state.is_final():
                    self._finish(sub, interrupted=True)
            self.manifest.save(status="interrupted", error=reason)
            self._publish_summary(f"interrupted: {reason}")
        finally:
            _on_stop_signals(previous)

    def _tell_workers(self, reason: str) -> None:
        """On a cluster, write the run's stop marker: shard work there checks it between shards (shards.py)."""
        if self.stop_marker is None:
            return
        try:
            self.stop_marker.request(reason)
        except Exception as e:  # the storage is unreachable: the stop still ends the run here
            self.log.warning("could not write the stop marker for the cluster's workers: %s", e)

    def _config(self, node: Node) -> dict[str, Any]:
        return node.step.config(self.recipe)

    def _inputs(self, node: Node) -> dict[str, dict[str, Any]]:
        return {name: self.done[producer][artifact] for name, (producer, artifact) in node.inputs.items()}

    def _submit(self, node: Node, force: bool = False) -> "Submitted | None":
        cfg = self._config(node)
        inputs = self._inputs(node)
        key = node.step.cache_key(cfg, inputs)
        if self.plan_only and node.name in self.targets:
            ctx = StepContext(node.step, key, self.store, cfg, {n: _ref(r) for n, r in inputs.items()}, self.runtime,
                              self.log)
            self.results.setdefault("_estimates", {})[node.name] = node.step.estimate(ctx)
            return None
        rerun = any(self.flags.get(f) for f in type(node.step).rerun_on)
        fresh = node.name in self.fresh
        recompute = force or fresh or rerun or self.store.step_committed(node.name, key) is None
        opts = self.recipe.step_options(node.name)
        runtime = {**self.runtime, "fresh": fresh, "step_module": type(node.step).module()}
        task = step_task(type(node.step), cfg).with_options(retries=opts.retries, retry_delay_seconds=opts.retry_delay_s,
                                                        refresh_cache=recompute, result_storage=self.storage)
        future = task.submit(node.name, key, self.store.root, cfg, inputs, runtime)
        return Submitted(future, node, key, inputs, force)

    def _finish(self, sub: "Submitted", interrupted: bool = False) -> "Submitted | None":
        """Record a finished step; returns its new submission when it must run again."""
        sub.future.wait()  # as_completed may yield before the final state is set on the future
        state = sub.future.state
        if state.is_completed() and state.name == "Cached" and not sub.forced and not interrupted \
                and not self._cache_record_holds(sub, state):
            # a cache record that disagrees with the committed files (a root copied or half rewritten):
            # trust the files, never the record
            return self._submit(sub.node, force=True)
        if state.is_completed():
            self._record_done(sub, state)
        else:  # Failed, Crashed or Cancelled
            self._record_failure(sub, state)
        return None

    def _cache_record_holds(self, sub: "Submitted", state: Any) -> bool:
        """Whether the step's outputs are committed with the hashes its Cached result names."""
        committed = self.store.step_committed(sub.node.name, sub.key)
        refs = StepResult.from_dict(state.result()).refs()
        return committed is not None and all(committed[n].sha256 == r["sha256"] for n, r in refs.items()
                                             if n in committed)

    def _failure(self, sub: "Submitted", state: Any) -> str:
        """What went wrong, in words: the step's own error, or the death of the worker that ran it."""
        error = str(state.message)
        try:
            state.result(raise_on_failure=True)
        except BaseException as e:  # the step's own error, for the summary and the flow's failure
            error = f"{type(e).__name__}: {e}"
        if not state.is_final():  # the future ended but the task run never did: its worker died under it
            cause = _future_error(sub.future)
            error = (f"the {self.runtime['runner']} worker running it died before the step finished"
                     + (f" ({cause})" if cause else "") + "; see the worker logs above")
        return error

    def _record_failure(self, sub: "Submitted", state: Any) -> None:
        """A step that did not complete: Interrupted when the run is stopping, else Failed (which stops the run)."""
        name, error = sub.node.name, self._failure(sub, state)
        label = "Interrupted" if STOP.is_set() or state.name == INTERRUPTED else "Failed"
        self.manifest.record(name, {"key": sub.key, "state": label, "error": error})
        self.summary.append(f"| {name} | **{label}** | | | | {error[:300]} |")
        if label == "Interrupted":
            self.log.warning("%s interrupted: %s", name, state.message or error)
        else:
            self.log.error("%s failed: %s", name, error)
        self.failed = self.failed or (name, error)

    def _record_done(self, sub: "Submitted", state: Any) -> None:
        """A completed (or Cached) step: its outputs feed the steps after it, its lineage goes to the manifest."""
        node = sub.node
        res = StepResult.from_dict(state.result())
        committed = self.store.step_committed(node.name, sub.key) or {}
        refs = {n: committed[n].to_dict() if n in committed else r for n, r in res.refs().items()}  # current paths
        res.outputs = {n: refs[n] for n in res.outputs}
        res.rejects, res.report = refs["rejects"], refs["report"]
        self.done[node.name] = res.outputs
        self.results[node.name] = res.to_dict()
        stats = dict(res.stats)
        files = stats.pop("input_files", None)  # what a step read from outside the pipeline (parse: the folder)
        self.manifest.record(node.name, {
            "key": sub.key, "state": state.name, "code_version": node.step.code_version(),
            "config": self._config(node), "inputs": {k: v["sha256"] for k, v in sub.inputs.items()},
            "inputs_from": {k: f"{p}.{a}" for k, (p, a) in node.inputs.items()},
            "outputs": res.outputs, "rejects": res.rejects, "report": res.report, "stats": stats,
            **({"input_files": files} if files is not None else {}),
        })
        out = next(iter(res.outputs.values()), res.report)
        self.summary.append(f"| {node.name} | {state.name} | {out['rows']} | {res.stats.get('rejected', 0)} | "
                            f"{res.stats.get('wall_s', 0):.2f} | `{self.store.display(out['path'])}` |")
        self.log.info("%s: %s, %s -> %s", node.name, state.name, _size(out), self.store.display(out["path"]))

    def _reuse_upstream(self) -> None:
        """Steps before --from/--only (or those a plan needs and did not run) come from earlier runs."""
        run = set(self.run_names)
        first = min((step_names(self.nodes).index(n) for n in run), default=0)
        for node in self.nodes[:first]:
            found = RunManifest.find_step(self.store, node.name)
            if found is None:
                continue  # the scheduler says so if a step that runs needs it
            doc, entry = found
            self.done[node.name] = entry["outputs"]
            # this run's manifest stays complete: the next --from/--only finds every step here
            self.manifest.record(node.name, {**entry, "state": "Reused", "reused_from_run": doc["run_id"]})

    def _publish_summary(self, status: str) -> None:
        md = [f"# infuse run `{self.recipe.name}`: {status}", "",
              "| step | state | rows out | rejected | wall s | output |", "|---|---|---|---|---|---|", *self.summary,
              "", f"manifest: `{self.store.display(self.store.url('manifests', self.manifest.run_id + '.json'))}`",
              "", lineage_markdown(self.manifest.steps)]
        try:
            create_markdown_artifact(key="run-summary", markdown="\n".join(md),
                                     description="every step of this run, its state and outputs")
        except Exception as e:  # the summary is a view; it must not hide the run's own outcome
            self.log.warning("could not publish the run summary: %s", e)


def process_alive(pid: int, started_before: float) -> bool:
    """Whether process `pid` runs and is the one that started before `started_before` (not a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # Linux: the process's start time, to rule out a pid reused by a newer process
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK") <= started_before + 1
    except (OSError, ValueError, StopIteration, IndexError):
        return True


def mark_crashed_runs(store: ArtifactStore, current: str, log: Any) -> list[str]:
    """Earlier runs of this storage root that the API still shows Running, whose process is gone
    (killed, the machine rebooted): mark them Crashed, so the UI does not show them running forever."""
    import socket

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    marked = []
    try:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING]))), limit=200)
            for fr in runs:
                if str(fr.id) == current:
                    continue
                doc = store.read_json(f"manifests/{fr.id}.json")
                if not doc or doc.get("host") != socket.gethostname() or doc.get("status") != "running":
                    continue  # another root's run, another machine's, or one that ended on its own
                if process_alive(int(doc.get("pid", 0)), float(doc.get("started_at", 0))):
                    continue
                client.set_flow_run_state(fr.id, Crashed(message=f"process {doc.get('pid')} is gone (killed); "
                                                                 f"marked by run {current}"), force=True)
                doc["status"] = "crashed"
                store.write_json(f"manifests/{fr.id}.json", doc)
                marked.append(str(fr.id))
    except Exception as e:  # housekeeping: never a reason to fail the run
        log.warning("could not check earlier runs for crashes: %s", e)
    if marked:
        log.warning("marked %d killed earlier run(s) Crashed: %s", len(marked), ", ".join(marked))
    return marked


def _on_stop_signals(handler: Any) -> Any:
    """Set SIGTERM's and SIGINT's handler (a dict of them: each its own); returns the previous ones.
    A no-op outside the main thread, where Python allows no handler."""
    import threading

    if threading.current_thread() is not threading.main_thread() or handler == {}:
        return {}
    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler[sig] if isinstance(handler, dict) else handler)
    return previous


def _future_error(future: Any) -> str:
    wrapped = getattr(future, "wrapped_future", None)
    try:
        exc = wrapped.exception(timeout=0) if wrapped is not None and hasattr(wrapped, "exception") else None
    except Exception:
        return ""
    return f"{type(exc).__name__}: {exc}" if exc else ""


def _track(running: dict[int, "Submitted"], sub: "Submitted | None") -> None:
    """Add a submitted step to the running ones (None: nothing was submitted, e.g. a plan's estimate)."""
    if sub is not None:
        running[id(sub.future)] = sub


@dataclass
class Submitted:
    future: Any
    node: Node
    key: str
    inputs: dict[str, Any]
    forced: bool  # resubmitted to recompute: its Cached state is not checked again


def _ref(d: dict[str, Any]) -> Any:
    from infuse.storage import ArtifactRef

    return ArtifactRef.from_dict(d)


def _size(ref: dict[str, Any]) -> str:
    return f"{ref['rows']} rows" if ref.get("kind", "table") == "table" else f"{ref['rows']} files"


def task_runner(recipe: Recipe) -> Any:
    """The Prefect task runner the recipe asks for: threads here, or a Dask / Ray cluster."""
    if recipe.runner.kind == "local":
        return None
    if recipe.runner.kind == "dask":
        from prefect_dask import DaskTaskRunner

        if recipe.runner.address:
            return DaskTaskRunner(address=recipe.runner.address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": recipe.runner.workers, "threads_per_worker": 1,
                                              "processes": True, "dashboard_address": None})
    try:
        from prefect_ray import RayTaskRunner
    except ImportError:
        raise ValueError("runner.kind 'ray' needs the ray extra: pip install -e '.[ray]'") from None
    return RayTaskRunner(address=recipe.runner.address,
                         init_kwargs=None if recipe.runner.address else {"num_cpus": recipe.runner.workers,
                                                                         "include_dashboard": False})


def pipeline_for(recipe: Recipe) -> Any:
    runner = task_runner(recipe)
    return infuse_pipeline if runner is None else infuse_pipeline.with_options(task_runner=runner)


def run_recipe(recipe_path: str, **kw: Any) -> dict[str, Any]:
    """Entry point for the CLI and tests: run the flow on the recipe's task runner."""
    from prefect.exceptions import CancelledRun

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return pipeline_for(load_recipe(recipe_path))(recipe_path, **kw)
    except CancelledRun as e:  # the flow run ended Interrupted (or was cancelled from the UI)
        raise RunInterrupted(str(e)) from None
