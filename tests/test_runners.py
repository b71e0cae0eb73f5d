"""Dask and Ray runners through the installed CLI, as a user runs them: from a folder outside the
repo, many shards, the work provably on the cluster's workers, outputs identical to a local run."""
from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import infuse, manifests, outputs_sha, write_recipe

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]

PLUGIN = str(Path(__file__).with_name("plugin_steps.py"))
STEPS = {"synthesize": {"max_llm_items": 0, "paraphrase": {"enabled": False}}}


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, request):
    from conftest import EXAMPLES

    request.getfixturevalue("prefect_server")
    root = tmp_path_factory.mktemp("local")
    recipe = write_recipe(root / "local.yaml", EXAMPLES, root / "runs", steps=STEPS, runner={"shard_rows": 10})
    res = infuse(["run", str(recipe)], cwd=root)
    assert res.returncode == 0, res.stdout + res.stderr
    return root / "runs"


@pytest.mark.parametrize("kind", ["dask", "ray"])
def test_cluster_runner_from_the_cli_matches_a_local_run(tmp_path, local_run, kind):
    from conftest import EXAMPLES

    recipe = write_recipe(tmp_path / f"{kind}.yaml", EXAMPLES, tmp_path / "runs", steps=STEPS,
                          runner={"kind": kind, "workers": 2, "shard_rows": 10})
    res = infuse(["run", str(recipe)], cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert outputs_sha(tmp_path / "runs") == outputs_sha(local_run), "byte-identical to the local runner"
    run, local = manifests(tmp_path / "runs")[-1], manifests(local_run)[-1]
    for step in ("clean", "filter"):
        stats = run["steps"][step]["stats"]
        assert stats["shards"] >= 8, (step, stats["shards"])
        assert stats["worker_pids"] and run["pid"] not in stats["worker_pids"], \
            f"{step}'s shards ran in the cluster's worker processes, not in the flow's"
        assert local["steps"][step]["stats"]["worker_pids"] == [local["pid"]], "the local runner runs them in-process"
        assert local["steps"][step]["stats"]["shards"] == stats["shards"]


def test_a_dying_dask_worker_fails_the_run_with_a_clear_error(tmp_path):
    """A step that kills the worker running it: the run fails in bounded time and says why."""
    from conftest import EXAMPLES

    plugin = tmp_path / "die_step.py"
    plugin.write_text(
        "import os\n"
        "from infuse.operators.parsers.document import CHUNK_SCHEMA\n"
        "from infuse.tasks.framework.step import Step, table\n\n"
        "class Die(Step):\n"
        "    name = 'die'\n"
        "    stage = 25\n"
        "    inputs = ('chunks',)\n"
        "    outputs = {'chunks': table(CHUNK_SCHEMA)}\n\n"
        "    def run(self, ctx):\n"
        "        os._exit(3)\n")
    recipe = write_recipe(tmp_path / "r.yaml", EXAMPLES, tmp_path / "runs", steps=STEPS, plugins=[str(plugin)],
                          runner={"kind": "dask", "workers": 2, "worker_timeout_s": 30})
    res = infuse(["run", str(recipe)], cwd=tmp_path, timeout=300)
    assert res.returncode == 1
    assert "step die failed: the dask worker running it died" in res.stderr, res.stderr[-2000:]
    assert manifests(tmp_path / "runs")[-1]["status"] == "failed"
