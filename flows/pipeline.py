"""The infuse flow: one cached Prefect task per step, Parquet artifacts between them.

Each step's output lives at a content address (its cache key). A step whose
key is unchanged and whose output still exists comes back Cached; one whose
output was deleted is recomputed. `from_step`/`only` take upstream outputs
from the latest run's manifest instead of running those steps.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.filesystems import LocalFileSystem, RemoteFileSystem
from prefect.runtime import flow_run

from infuse.flows.recipe import Recipe, load_recipe
from infuse.flows.steps import STEPS, step_names
from infuse.storage import ArtifactStore, RunManifest
from infuse.tasks.common import StepResult, outputs_present, stable_hash, step_key

RUNTIME_KEYS = {"enabled", "retries", "retry_delay_s"}  # step options that do not change outputs


class StepFailed(RuntimeError):
    pass


def step_config(recipe: Recipe, name: str) -> dict[str, Any]:
    """The part of a step's options that determines its output (what goes into the cache key)."""
    cfg = recipe.step_options(name).model_dump(mode="json", exclude=RUNTIME_KEYS)
    if name == "parse":
        cfg["input_dir"] = str(Path(recipe.input).resolve())
    return cfg


def result_storage(store: ArtifactStore) -> Any:
    """Prefect results (the cache records) persist under the storage root too.

    Prefect wants result storage saved server-side, so the block is saved under
    a name derived from the root (idempotent).
    """
    base = store.url("_prefect")
    if store._protocol in ("file", "local"):
        block: Any = LocalFileSystem(basepath=base)
    else:
        block = RemoteFileSystem(basepath=store.display(base))
    block.save(f"infuse-results-{stable_hash(base)[:12]}", overwrite=True)
    return block


def _submit(task: Any, options: Any, refresh: bool, storage: Any, *args: Any) -> Any:
    future = task.with_options(retries=options.retries, retry_delay_seconds=options.retry_delay_s,
                               refresh_cache=refresh, result_storage=storage).submit(*args)
    future.wait()
    return future.state


def _matches_store(store: ArtifactStore, result: dict[str, Any]) -> bool:
    """Whether a cached StepResult describes the files committed under its key now."""
    for name, ref in {**result["outputs"], "rejects": result["rejects"]}.items():
        committed = store.committed(result["step"], result["key"], name)
        if committed is None or committed.sha256 != ref["sha256"]:
            return False
    return True


def _runner_kind() -> str:
    """The task runner this flow run really has (a deployment may run it without the recipe's runner)."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    name = type(ctx.task_runner).__name__ if ctx and ctx.task_runner else ""
    return {"DaskTaskRunner": "dask", "RayTaskRunner": "ray"}.get(name, "local")


def plan_steps(from_step: str | None, only: str | None, refresh: list[str] | None) -> tuple[set[str], set[str]]:
    """Which steps run, and which of those must recompute (refresh: that step and all after it)."""
    names = step_names()
    for n in [from_step, only, *(refresh or [])]:
        if n is not None and n not in names:
            raise ValueError(f"unknown step {n!r}; steps are: {', '.join(names)}")
    run = set(names)
    if from_step:
        run = set(names[names.index(from_step):])
    if only:
        run = {only}
    forced: set[str] = set()
    for r in refresh or []:
        forced |= set(names[names.index(r):])
    return run, forced


@flow(name="infuse", log_prints=True)
def infuse_pipeline(recipe_path: str, from_step: str | None = None, only: str | None = None,
                    refresh: list[str] | None = None, retry_failed: bool = False,
                    stop_before: str | None = None) -> dict[str, Any]:
    """Run the recipe's steps in order; returns {step: StepResult dict}.

    retry_failed: re-run synthesis only for the work items that failed last time.
    """
    log = get_run_logger()
    recipe = load_recipe(recipe_path)
    store = ArtifactStore(recipe.storage)
    run, forced = plan_steps(from_step, only, [*(refresh or []), *(["synthesize"] if retry_failed else [])])
    previous = RunManifest.load_latest(store) if (from_step or only) else None
    manifest = RunManifest(store, str(flow_run.id or "local"), recipe.model_dump(mode="json"), recipe_path)
    storage = result_storage(store)
    runtime = {"runner": _runner_kind(), "workers": recipe.runner.workers, "retry_failed": retry_failed}
    latest: dict[str, dict[str, Any]] = {}  # artifact name -> ref of the last step that produced it
    results: dict[str, dict[str, Any]] = {}
    summary = ["| step | state | rows out | rejected | wall s | output |", "|---|---|---|---|---|---|"]

    for module, task in STEPS:
        spec = module.SPEC
        if spec.name == stop_before:
            break
        options = recipe.step_options(spec.name)
        if not options.enabled:
            continue
        if only and spec.name not in run and step_names().index(spec.name) > step_names().index(only):
            continue  # after --only's step: its outputs would be stale, so they are not carried over
        if spec.name not in run:  # take it from the last run instead of running it
            prev = (previous or {}).get("steps", {}).get(spec.name)
            if prev is None or "outputs" not in prev or not outputs_present(store, spec, prev["key"]):
                names = step_names()
                if names.index(spec.name) < names.index(from_step or only):  # an upstream step: needed
                    raise StepFailed(f"--from/--only needs the output of {spec.name!r} from an earlier run; "
                                     f"run the whole pipeline once first")
                continue
            for name in spec.outputs:
                latest[name] = prev["outputs"][name]
            # this run's manifest stays complete: the next --from/--only finds every step here
            manifest.record(spec.name, {**prev, "state": "Reused", "reused_from_run": previous["run_id"]})
            continue
        missing = [i for i in spec.inputs if i not in latest]
        if missing:
            raise StepFailed(f"{spec.name} needs {missing}, which no enabled step before it produces")
        inputs = {i: latest[i] for i in spec.inputs}
        cfg = step_config(recipe, spec.name)
        # the key: input artifacts' hashes plus whatever else a step reads (parse: the folder's files;
        # synthesize: prompt override files), over the config minus what only changes how it runs
        fp = {"inputs": {k: v["sha256"] for k, v in inputs.items()},
              **(module.fingerprint(cfg) if hasattr(module, "fingerprint") else {})}
        key = step_key(spec, module.key_config(cfg) if hasattr(module, "key_config") else cfg, fp)
        recompute = spec.name in forced or not outputs_present(store, spec, key)
        state = _submit(task, options, recompute, storage, spec.name, key, store.root, cfg, inputs, runtime)
        if state.is_completed() and state.name == "Cached" and not _matches_store(store, state.result()):
            # a cache record that disagrees with the committed files (a root copied or half rewritten):
            # trust the files' absence, never the record
            state = _submit(task, options, True, storage, spec.name, key, store.root, cfg, inputs, runtime)
        if not state.is_completed():  # Failed, Crashed or Cancelled
            manifest.record(spec.name, {"key": key, "state": "Failed", "error": str(state.message)})
            manifest.save(status="failed")
            state.result(raise_on_failure=True)  # re-raise the step's own error: the flow fails with it
        res = StepResult.from_dict(state.result())
        res.outputs = {n: store.committed(spec.name, key, n).to_dict() for n in res.outputs}  # current paths
        res.rejects = store.committed(spec.name, key, "rejects").to_dict()
        for name in spec.outputs:
            latest[name] = res.outputs[name]
        results[spec.name] = res.to_dict()
        manifest.record(spec.name, {
            "key": key, "state": state.name, "code_version": spec.code_version(),
            "config": cfg, "inputs": {k: v["sha256"] for k, v in inputs.items()},
            "outputs": res.outputs, "rejects": res.rejects, "stats": res.stats,
        })
        out = next(iter(res.outputs.values()))
        summary.append(f"| {spec.name} | {state.name} | {out['rows']} | {res.stats.get('rejected', 0)} | "
                       f"{res.stats.get('wall_s', 0):.2f} | `{store.display(out['path'])}` |")
        log.info("%s: %s, %s rows -> %s", spec.name, state.name, out["rows"], store.display(out["path"]))

    manifest.save(status="partial" if stop_before else "completed")
    create_markdown_artifact(
        key="run-summary",
        markdown="\n".join([f"# infuse run `{recipe.name}`", "", *summary, "",
                            f"manifest: `{store.display(store.url('manifests', manifest.run_id + '.json'))}`"]),
        description="every step of this run, its state and outputs",
    )
    return results


def task_runner(recipe: Recipe) -> Any:
    """The Prefect task runner the recipe asks for: threads here, or a Dask cluster."""
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
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return pipeline_for(load_recipe(recipe_path))(recipe_path, **kw)
