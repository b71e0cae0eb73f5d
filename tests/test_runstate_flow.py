"""SIGTERM to `infuse run` on a Dask runner: the step running on the cluster ends Interrupted, at once.

The CLI alone gets the signal (its cluster's workers do not, as on a remote
cluster); the flow writes the run's stop marker, the step's shards on the
workers stop between shards, and the step ends Interrupted long before its
work or the stop grace would end.
"""
from __future__ import annotations

import os
import signal
import time

import pytest
from cli_helpers import manifests, spawn, wait_for, write_recipe

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]

OFF = ("parse", "chunk", "clean", "filter", "dedup", "synthesize", "qa_filter", "mix")
GRACE_S = 90  # how long the flow would wait for a step that never hears of the stop
PLUGIN = '''
import sys
import time
from functools import partial
from pathlib import Path

import cloudpickle

from infuse.tasks.framework.shards import map_shards
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, table

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the shards' workers never load this plug-in


def slow_shard(log_dir, shard):
    (Path(log_dir) / f"{shard}.started").touch()
    time.sleep(0.2)
    return shard


class SlowOptions(StepOptions):
    log_dir: str = ""


class Slow(Step):
    name = "slow"
    stage = 5
    description = "200 slow shards on the cluster"
    outputs = {"done": table()}
    Options = SlowOptions

    def run(self, ctx: StepContext) -> StepOutput:
        n = len(list(map_shards(partial(slow_shard, ctx.options.log_dir), range(200), ctx.runtime)))
        return StepOutput({"done": ctx.write_table("done", [{"shards": n}])}, report=StepReport(rows_in=n, kept=n))
'''


def test_sigterm_stops_a_step_running_on_a_dask_cluster(tmp_path):
    plugin, logs, docs = tmp_path / "slow_step.py", tmp_path / "shards", tmp_path / "docs"
    plugin.write_text(PLUGIN, encoding="utf-8")
    logs.mkdir()
    docs.mkdir()
    recipe = write_recipe(tmp_path / "r.yaml", docs, tmp_path / "runs", plugins=[str(plugin)],
                          runner={"kind": "dask", "workers": 2},
                          steps={**{s: {"enabled": False} for s in OFF}, "slow": {"log_dir": str(logs)}})
    proc = spawn(["run", str(recipe)], cwd=tmp_path, INFUSE_STOP_GRACE_S=str(GRACE_S))
    wait_for(lambda: len(list(logs.glob("*.started"))) >= 3, 120, "the step's first shards", proc)
    t0 = time.time()
    os.kill(proc.pid, signal.SIGTERM)  # the CLI only: the cluster's workers get no signal
    out, _ = proc.communicate(timeout=GRACE_S + 60)
    assert proc.returncode == 130, f"rc {proc.returncode}:\n{out[-4000:]}"
    assert time.time() - t0 < 30, "the step stopped at once, not at the end of the stop grace"
    doc = manifests(tmp_path / "runs")[-1]
    assert doc["status"] == "interrupted" and doc["steps"]["slow"]["state"] == "Interrupted", doc["steps"]
    assert (tmp_path / "runs" / "runstate" / doc["run_id"] / "stop").is_file(), "the flow wrote the stop marker"
    assert len(list(logs.glob("*.started"))) < 40, "the shards stopped soon after the stop request"
