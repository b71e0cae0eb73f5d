"""Deployments as a user runs them: `infuse deploy` on a real Prefect server, a real process worker in
another folder, runs triggered through the API, a failed run fixed and retried, and GPU steps queued
by the `gpu` tag limit."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from cli_helpers import cli_env, infuse, manifests

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]

PLUGIN = Path(__file__).with_name("plugin_steps.py")
PREFECT = str(Path(sys.executable).with_name("prefect"))
OFF = {s: {"enabled": False} for s in ("filter", "dedup", "synthesize", "qa_filter")}


@pytest.fixture
def no_gpu_limit_after():
    """The `gpu` limit is server-wide: later tests of the session must not queue on it."""
    yield
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.delete_concurrency_limit_by_tag("gpu")
        except ObjectNotFound:
            pass
        try:
            client.delete_global_concurrency_limit_by_name("infuse-gpu")
        except ObjectNotFound:
            pass


def _project(root: Path, fail: bool) -> Path:
    """A user's project folder: a recipe whose paths are all relative to it."""
    from conftest import EXAMPLES

    root.mkdir(exist_ok=True)
    if not (root / "docs").exists():
        shutil.copytree(EXAMPLES, root / "docs")
        shutil.copy(PLUGIN, root / "plugin_steps.py")
    recipe = {"name": "deploy-test", "input": "docs", "storage": "runs", "plugins": ["plugin_steps.py"],
              "steps": {"gate": {"fail": fail}, **OFF}}
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    return root / "recipe.yaml"


def _task_states(flow_run_id) -> dict[str, str]:
    """The newest task run of each step of a flow run, as the API has it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {t.name: t.state.name for t in sorted(runs, key=lambda t: t.created)}


def _wait_final(flow_run_id, run_count: int, timeout: float):
    from prefect.client.orchestration import get_client

    deadline = time.time() + timeout
    with get_client(sync_client=True) as client:
        while time.time() < deadline:
            fr = client.read_flow_run(flow_run_id)
            if fr.run_count >= run_count and fr.state.is_final():
                return fr
            time.sleep(0.5)
    raise AssertionError(f"flow run {flow_run_id} did not finish its run {run_count} in {timeout} s: {fr.state}")


def test_deploy_worker_run_fail_fix_retry(tmp_path, monkeypatch, no_gpu_limit_after):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    project = tmp_path / "project"
    recipe = _project(project, fail=True)
    res = infuse(["deploy", "recipe.yaml", "--cron", "30 1 * * 0"], cwd=project)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "prefect worker start --pool infuse" in res.stdout

    with get_client(sync_client=True) as client:
        nightly = client.read_deployment_by_name("infuse/deploy-test-nightly")
        full = client.read_deployment_by_name("infuse/deploy-test-full")
        pools = {p: client.read_work_pool(p) for p in ("infuse", "infuse-gpu")}
        gpu = client.read_global_concurrency_limit_by_name("tag:gpu")
    assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in nightly.schedules] == \
        [("30 1 * * 0", "UTC", True)]
    assert nightly.parameters == {"recipe_path": "recipe.yaml"}, "relative to the project, as the user wrote it"
    assert full.parameters == {"recipe_path": "recipe.yaml", "refresh": ["parse"]} and not full.schedules
    assert nightly.entrypoint == "infuse.flows.pipeline:infuse_pipeline" and nightly.work_pool_name == "infuse"
    assert nightly.pull_steps == [{"infuse.deploy.steps.enter_project": {"directory": str(project)}}]
    assert {p.type for p in pools.values()} == {"process"} and pools["infuse-gpu"].concurrency_limit == 1
    assert gpu.limit == 1 and gpu.active

    # a real worker, started in a folder of its own: the deployment's pull step takes runs to the project
    (tmp_path / "worker").mkdir()
    worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", "infuse", "--type", "process"],
                              cwd=tmp_path / "worker", env=cli_env(PREFECT_WORKER_QUERY_SECONDS="1"),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # triggered from a folder where no recipe or data is
    try:
        # 1. the nightly run fails at the gate: the steps before it are committed
        failed = run_deployment("infuse/deploy-test-nightly", timeout=240)
        assert failed.state.is_failed(), failed.state
        assert "gate was told to fail" in failed.state.message
        assert _task_states(failed.id) == {"parse": "Completed", "chunk": "Completed", "gate": "Failed"}

        # 2. fix the recipe, retry the same flow run: the worker picks it up, upstream comes back Cached
        _project(project, fail=False)
        retry = subprocess.run([PREFECT, "flow-run", "retry", str(failed.id)], cwd=elsewhere, env=cli_env(),
                               capture_output=True, text=True, timeout=120)
        assert retry.returncode == 0, retry.stdout + retry.stderr
        retried = _wait_final(failed.id, run_count=2, timeout=240)
        assert retried.state.is_completed(), retried.state
        assert _task_states(failed.id) == {"parse": "Cached", "chunk": "Cached", "gate": "Completed",
                                           "clean": "Completed"}
        doc = manifests(project / "runs")[-1]
        assert doc["run_id"] == str(failed.id) and doc["status"] == "completed"
        assert doc["recipe_path"] == "recipe.yaml"

        # 3. the on-demand full run recomputes every step, with its task runs in the API
        run = run_deployment("infuse/deploy-test-full", timeout=240)
        assert run.state.is_completed(), run.state
        assert _task_states(run.id) == dict.fromkeys(("parse", "chunk", "gate", "clean"), "Completed")
        assert (project / "runs" / "manifests" / f"{run.id}.json").exists()
        assert not (elsewhere / "runs").exists() and not (tmp_path / "worker" / "runs").exists()
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)

    # deploying again updates the deployments in place; --from makes their runs start at a step
    res = infuse(["deploy", str(recipe), "--from", "gate", "--pool", "infuse-gpu"], cwd=project)
    assert res.returncode == 0, res.stdout + res.stderr
    with get_client(sync_client=True) as client:
        again = client.read_deployment_by_name("infuse/deploy-test-nightly")
    assert again.id == nightly.id and again.work_pool_name == "infuse-gpu"
    assert again.parameters == {"recipe_path": "recipe.yaml", "from_step": "gate"}
    assert [s.schedule.cron for s in again.schedules] == ["0 2 * * *"]


GPU_PLUGIN = '''
import time
from pathlib import Path

import pyarrow as pa
from infuse.tasks.framework.step import Step, StepOptions, StepOutput, StepReport, table

SCHEMA = pa.schema([("start", pa.float64()), ("end", pa.float64()), ("met", pa.bool_())])


class HoldOptions(StepOptions):
    meet: str = ""  # a folder where each holder leaves a mark when it starts
    wait_s: float = 1.5  # how long a holder holds "the GPU" waiting for the other's mark


class Hold(Step):
    """Holds "the GPU" until the other holder has started too (or wait_s passes); writes down when, and whether
    they met: two holders met only if both held the GPU at once."""
    gpu = True
    inputs = ("chunks",)
    Options = HoldOptions

    def run(self, ctx):
        start = time.time()
        folder = Path(ctx.options.meet)
        (folder / self.name).touch()
        other = folder / ("hold_b" if self.name == "hold_a" else "hold_a")
        deadline = time.monotonic() + ctx.options.wait_s
        while not other.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        row = {"start": start, "end": time.time(), "met": other.exists()}
        out = ctx.write_table(self.out, [row], SCHEMA)
        return StepOutput({self.out: out}, report=StepReport(rows_in=1, kept=1))


class HoldA(Hold):
    name, stage, out = "hold_a", 26, "a"
    outputs = {"a": table(SCHEMA)}


class HoldB(Hold):
    name, stage, out = "hold_b", 27, "b"
    outputs = {"b": table(SCHEMA)}
'''


def test_gpu_steps_queue_on_the_gpu_tag_limit(tmp_path, monkeypatch, no_gpu_limit_after):
    """Two independent GPU steps run side by side, until the `gpu` limit of 1 makes the second wait.
    Each step holds "the GPU" until it sees the other start: without the limit they meet (however slowly the
    second one starts on a busy machine); with it the first holds for wait_s and never sees the second."""
    import pyarrow.parquet as pq

    from infuse.deploy.deployments import ensure_gpu_limit
    from infuse.flows.pipeline import run_recipe

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\nLotusDB keeps its log in segments of 64 MiB.\n")
    (tmp_path / "gpu_steps.py").write_text(GPU_PLUGIN)
    monkeypatch.chdir(tmp_path)

    def holds(name: str, wait_s: float) -> list[dict]:
        meet = tmp_path / f"meet-{name}"
        meet.mkdir()
        hold = {"meet": str(meet), "wait_s": wait_s}
        recipe = tmp_path / f"{name}.yaml"
        recipe.write_text(yaml.safe_dump({"name": name, "input": "docs", "storage": f"runs-{name}",
                                          "plugins": ["gpu_steps.py"],
                                          "steps": {**OFF, "clean": {"enabled": False},
                                                    "hold_a": hold, "hold_b": hold}}))
        res = run_recipe(recipe.name)
        return sorted((pq.read_table(res[s]["outputs"][o]["path"]).to_pylist()[0] for s, o in (("hold_a", "a"),
                                                                                             ("hold_b", "b"))),
                      key=lambda r: r["start"])

    free = holds("free", wait_s=60)  # each returns as soon as the other has started
    assert [h["met"] for h in free] == [True, True], f"without the limit the two GPU steps overlap: {free}"
    ensure_gpu_limit(1)
    first, second = holds("limited", wait_s=1.5)
    assert not first["met"], f"with a limit of 1 the second GPU step cannot start while the first holds: {first}"
    assert second["start"] >= first["end"], f"the second GPU step waits for the first: {first} {second}"


def test_the_flow_a_worker_loads_runs_on_the_recipe_s_dask_runner(tmp_path, examples_copy):
    """A worker imports `infuse_pipeline` as it is (no task runner of the recipe's) and calls it, in a
    process of its own: the steps still fan their shards out to the recipe's Dask cluster."""
    recipe = {"name": "dask-deploy", "input": str(examples_copy), "storage": str(tmp_path / "runs"),
              "runner": {"kind": "dask", "workers": 1, "shard_rows": 20},  # one worker: the step and its shards
              "steps": {s: {"enabled": False} for s in ("filter", "dedup", "synthesize", "qa_filter")}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    code = "from infuse.flows.pipeline import infuse_pipeline; infuse_pipeline('r.yaml')"
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=cli_env(), capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    doc = manifests(tmp_path / "runs")[-1]
    stats = doc["steps"]["clean"]["stats"]
    assert doc["status"] == "completed" and doc["steps"]["clean"]["outputs"]["chunks"]["rows"] > 0
    assert stats["shards"] >= 4 and stats["worker_pids"] and doc["pid"] not in stats["worker_pids"], \
        "clean's shards ran in the Dask cluster's workers"
