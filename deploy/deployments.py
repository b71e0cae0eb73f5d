"""`infuse deploy`: the work pools, the `gpu` limit and a recipe's deployments on a Prefect server.

Two process work pools: `infuse` for machines without a GPU and `infuse-gpu`
for GPU boxes (one flow run at a time per GPU slot). Whatever pool a run
lands in, steps with `gpu = True` carry the Prefect tag `gpu`, and the tag's
concurrency limit (1 by default) makes them queue for a slot instead of
colliding on one GPU. The deployments themselves are deploy/prefect.yaml,
applied by `prefect deploy` with this recipe's values.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CPU_POOL = "infuse"
GPU_POOL = "infuse-gpu"
GPU_TAG = "gpu"
from infuse.tasks.framework.prefect_task import GPU_LIMIT  # the global concurrency limit every gpu step takes a slot of
PREFECT_FILE = Path(__file__).with_name("prefect.yaml")


@dataclass
class Deployed:
    names: list[str]  # flow/deployment names, e.g. infuse/demo-nightly
    pool: str
    recipe_path: str  # as the deployments pass it: relative to the project directory when under it


def recipe_param(recipe: str | Path, project: Path) -> str:
    """The recipe path a worker opens from the project directory: relative when it is under it."""
    path = Path(recipe).resolve()
    try:
        return path.relative_to(project.resolve()).as_posix()
    except ValueError:
        return str(path)


def ensure_pools(gpu_slots: int) -> None:
    """Create the CPU and GPU process work pools if they do not exist (existing ones are left as they are)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    template = ProcessWorker.get_default_base_job_template()
    pools = {CPU_POOL: ("infuse runs on machines without a GPU", None),
             GPU_POOL: ("infuse runs on a GPU box: one flow run per GPU slot", gpu_slots)}
    with get_client(sync_client=True) as client:
        for name, (description, limit) in pools.items():
            try:
                client.read_work_pool(name)
            except ObjectNotFound:
                client.create_work_pool(WorkPoolCreate(name=name, type="process", base_job_template=template,
                                                       description=description, concurrency_limit=limit))


def ensure_gpu_limit(slots: int) -> None:
    """At most `slots` task runs tagged `gpu` at once, across all runs and workers (an upsert)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.create_concurrency_limit(tag=GPU_TAG, concurrency_limit=slots)  # shown on the task runs' tag
        client.upsert_global_concurrency_limit_by_name(GPU_LIMIT, slots)  # what the gpu steps wait on


def deploy(recipe: str | Path, cron: str = "0 2 * * *", timezone: str = "UTC", pool: str = CPU_POOL,
           gpu_slots: int = 1, from_step: str | None = None, project: Path | None = None) -> Deployed:
    """Apply deploy/prefect.yaml for one recipe, from the project directory (default: here).

    from_step: the runs start at this step and take the earlier steps' outputs from the newest run under
    the same storage root that has them (a GPU box that trains on what a data cluster made).
    """
    from infuse.flows.recipe import load_recipe

    project = (project or Path.cwd()).resolve()
    r = load_recipe(recipe)
    ensure_pools(gpu_slots)
    ensure_gpu_limit(gpu_slots)
    param = recipe_param(recipe, project)
    env = {**os.environ, "INFUSE_RECIPE": param, "INFUSE_NAME": r.name, "INFUSE_CRON": cron,
           "INFUSE_TIMEZONE": timezone, "INFUSE_POOL": pool}
    res = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file",
                          str(PREFECT_FILE)], cwd=project, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"prefect deploy failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    names = [f"infuse/{r.name}-nightly", f"infuse/{r.name}-full"]
    if from_step:
        _set_param(names, "from_step", from_step)
    return Deployed(names, pool, param)


def _set_param(names: list[str], key: str, value: object) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentUpdate

    with get_client(sync_client=True) as client:
        for name in names:
            dep = client.read_deployment_by_name(name)
            client.update_deployment(dep.id, DeploymentUpdate(parameters={**dep.parameters, key: value}))
