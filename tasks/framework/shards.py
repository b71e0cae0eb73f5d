"""Run a per-shard function over a stream of record batches, here or on a Dask / Ray cluster.

Under the recipe's `runner: {kind: dask}` the flow runs on Prefect's
DaskTaskRunner, and a step fans its shards out to the same cluster through
prefect-dask's client; under `kind: ray` (the `ray` extra) it runs on
RayTaskRunner and the shards become Ray tasks. A bounded window of shards is
in flight at a time, so the corpus is never held in memory whole; results
come back in input order. `ShardStats` records how many shards ran and in
which worker processes, for the step's report.

A stop request ends the work between shards. Here the flow's STOP event says
so; on a cluster, whose processes never see that event, the run's stop marker
under the storage root does (storage/runstate.py): no shard starts once it is
there, and the shards still queued are cancelled.
"""
from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from infuse.operators.common.base import Interrupted, check_stop
from infuse.storage.runstate import StopMarker

T = TypeVar("T")
SHARD_ROWS = 2_000  # rows per shard unless the recipe's runner.shard_rows says otherwise


@dataclass
class ShardStats:
    shards: int = 0
    pids: set[int] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        return {"shards": self.shards, "worker_pids": sorted(self.pids)}


def shard_rows(runtime: dict[str, Any]) -> int:
    return int(runtime.get("shard_rows") or SHARD_ROWS)


def check_run_stop(marker: StopMarker | None) -> None:
    """Raise Interrupted when the run is stopping: STOP in this process, or the run's marker on a cluster."""
    check_stop()
    if marker is not None and marker.requested():
        raise Interrupted("stop requested")


def _run_shard(fn: Callable[[Any], T], marker: StopMarker | None, shard: Any) -> tuple[T, int]:
    """One shard where it runs (here, or a cluster worker), with the pid of that process."""
    if marker is not None:  # a worker: the shard may have waited in the queue while the run stopped
        check_run_stop(marker)
    return fn(shard), os.getpid()


def map_shards(fn: Callable[[Any], T], shards: Iterable[Any], runtime: dict[str, Any],
               stats: ShardStats | None = None) -> Iterator[T]:
    stats = stats if stats is not None else ShardStats()
    marker = StopMarker.from_runtime(runtime)
    for result, pid in _map(partial(_run_shard, fn, marker), shards, runtime, marker):
        stats.shards += 1
        stats.pids.add(pid)
        yield result


def _map(fn: Callable[[Any], Any], shards: Iterable[Any], runtime: dict[str, Any],
         marker: StopMarker | None) -> Iterator[Any]:
    kind = runtime.get("runner", "local")
    window = max(2, 2 * int(runtime.get("workers", 2)))
    if kind == "local":
        for shard in shards:
            check_stop()
            yield fn(shard)
    elif kind == "dask":
        yield from _map_dask(fn, shards, window, marker)
    elif kind == "ray":
        yield from _map_ray(fn, shards, window, marker)
    else:
        raise ValueError(f"runner {kind!r} cannot fan out shards; use local, dask or ray")


def _map_dask(fn: Callable[[Any], T], shards: Iterable[Any], window: int, marker: StopMarker | None) -> Iterator[T]:
    """The step runs on a Dask worker: worker_client leaves that worker's thread while the shards run,
    so a cluster of one worker does not wait on itself."""
    from distributed import worker_client

    with worker_client() as client:
        pending: deque[Any] = deque()
        try:
            for shard in shards:
                check_run_stop(marker)
                pending.append(client.submit(fn, shard, pure=False))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # stopped or failed: the shards not yet run are not wanted
            if pending:
                client.cancel(list(pending))


def _apply(fn: Callable[[Any], T], shard: Any) -> T:
    return fn(shard)


def _map_ray(fn: Callable[[Any], T], shards: Iterable[Any], window: int, marker: StopMarker | None) -> Iterator[T]:
    """Under Prefect's RayTaskRunner the task runs inside the Ray cluster, which takes the shards too."""
    import ray

    remote = ray.remote(_apply)
    pending: deque[Any] = deque()
    try:
        for shard in shards:
            check_run_stop(marker)
            pending.append(remote.remote(fn, shard))
            if len(pending) >= window:
                yield ray.get(pending.popleft())
        while pending:
            yield ray.get(pending.popleft())
    finally:  # stopped or failed: the shards not yet run are not wanted
        for ref in pending:
            ray.cancel(ref)
