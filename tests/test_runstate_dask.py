"""A stop request reaches shard work on a real Dask cluster.

The flow's STOP event lives in the flow's process; a step on a Dask worker and its shards on others
never see it. The run's stop marker under the storage root (storage/runstate.py) is what they see:
once it is written, no shard starts, the queued ones are cancelled, and the step ends Interrupted.
"""
from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import pytest

from infuse.operators.common.base import Interrupted
from infuse.storage import StopMarker
from infuse.tasks.framework.shards import map_shards

distributed = pytest.importorskip("distributed")

SHARDS = 200
SHARD_S = 0.2  # all shards on two workers: ~20 s, far longer than a stop may take


def slow_shard(log_dir: str, shard: int) -> int:
    """A shard that says it started (one file each), then works a while."""
    (Path(log_dir) / f"{shard}.started").touch()
    time.sleep(SHARD_S)
    return shard


def step_on_worker(runtime: dict, log_dir: str) -> int:
    """What a step does on its worker: fan its shards out to the cluster, in order."""
    return len(list(map_shards(partial(slow_shard, log_dir), range(SHARDS), runtime)))


def started(log_dir: Path) -> int:
    return len(list(log_dir.glob("*.started")))


def test_the_stop_marker_stops_shards_on_dask_workers(tmp_path):
    from distributed import Client, LocalCluster

    logs = tmp_path / "shards"
    logs.mkdir()
    marker = StopMarker(str(tmp_path / "runs"), "run-1")
    runtime = {"runner": "dask", "workers": 2, "stop_marker": marker.to_runtime()}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        future = client.submit(step_on_worker, runtime, str(logs), pure=False)
        deadline = time.monotonic() + 60
        while started(logs) < 3 and time.monotonic() < deadline and not future.done():
            time.sleep(0.05)
        assert started(logs) >= 3 and not future.done(), "the shards run on the workers"
        assert not marker.requested()
        marker.request("SIGTERM")
        t0 = time.monotonic()
        with pytest.raises(Interrupted, match="stop requested"):
            future.result(timeout=30)
        assert time.monotonic() - t0 < 5, "stopped between shards, not at the end of the work"
        at_stop = started(logs)
        time.sleep(3 * SHARD_S)
        assert started(logs) == at_stop, "no shard starts after the step ended (the queued ones were cancelled)"
    assert at_stop < 20 < SHARDS, f"{at_stop} shards started: the run went on after the stop request"


def test_the_marker_is_a_file_under_the_run_root_and_local_runs_carry_none(tmp_path):
    marker = StopMarker(str(tmp_path), "r1")
    assert StopMarker.from_runtime({"runner": "local"}) is None
    assert StopMarker.from_runtime({"runner": "dask", "stop_marker": marker.to_runtime()}) == marker
    assert not marker.requested() and not StopMarker(str(tmp_path), "r2").requested()
    marker.request("SIGINT")
    assert marker.requested() and (tmp_path / "runstate" / "r1" / "stop").is_file()
    assert not StopMarker(str(tmp_path), "r2").requested(), "one run's stop is not another's"


def test_a_long_loop_of_one_task_on_a_worker_stops_on_the_marker(tmp_path):
    """A step's own loop (synthesis waves, the training launcher) checks STOP, not the marker: while a step runs
    on a worker, watch_stop_marker sets that process's STOP when the marker appears, and clears it after."""
    import threading

    from infuse.operators.common.base import STOP, check_stop
    from infuse.tasks.framework.prefect_task import watch_stop_marker

    marker = StopMarker(str(tmp_path), "run-2")
    threading.Timer(0.5, marker.request, args=("SIGTERM",)).start()  # the flow, elsewhere, stops the run
    t0, laps = time.time(), 0
    with pytest.raises(Interrupted), watch_stop_marker(marker, every_s=0.1):
        while time.time() - t0 < 30:
            check_stop()
            laps += 1
            time.sleep(0.01)
    assert 0.4 < time.time() - t0 < 5 and laps > 10
    assert not STOP.is_set(), "cleared for the next step this worker runs"
    with watch_stop_marker(None):  # a local run: no marker, nothing watched
        check_stop()
