"""Run a per-shard function over a stream of record batches, here or on a Dask / Ray cluster.

Under the recipe's `runner: {kind: dask}` the flow runs on Prefect's
DaskTaskRunner, and a step fans its shards out to the same cluster through
prefect-dask's client; under `kind: ray` (the `ray` extra) it runs on
RayTaskRunner and the shards become Ray tasks. A bounded window of shards is
in flight at a time, so the corpus is never held in memory whole; results
come back in input order. `ShardStats` records how many shards ran and in
which worker processes, for the step's report.
"""
from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from infuse.operators.common.base import check_stop

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


def _with_pid(fn: Callable[[Any], T], shard: Any) -> tuple[T, int]:
    return fn(shard), os.getpid()


def map_shards(fn: Callable[[Any], T], shards: Iterable[Any], runtime: dict[str, Any],
               stats: ShardStats | None = None) -> Iterator[T]:
    stats = stats if stats is not None else ShardStats()
    for result, pid in _map(partial(_with_pid, fn), shards, runtime):
        stats.shards += 1
        stats.pids.add(pid)
        yield result


def _map(fn: Callable[[Any], Any], shards: Iterable[Any], runtime: dict[str, Any]) -> Iterator[Any]:
    kind = runtime.get("runner", "local")
    window = max(2, 2 * int(runtime.get("workers", 2)))
    if kind == "local":
        for shard in shards:
            check_stop()
            yield fn(shard)
        return
    if kind == "ray":
        yield from _map_ray(fn, shards, window)
        return
    if kind != "dask":
        raise ValueError(f"runner {kind!r} cannot fan out shards; use local, dask or ray")
    from distributed import worker_client

    # the step runs on a Dask worker: worker_client leaves that worker's thread while the shards run,
    # so a cluster of one worker does not wait on itself
    with worker_client() as client:
        pending: deque[Any] = deque()
        for shard in shards:
            check_stop()
            pending.append(client.submit(fn, shard, pure=False))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _apply(fn: Callable[[Any], T], shard: Any) -> T:
    return fn(shard)


def _map_ray(fn: Callable[[Any], T], shards: Iterable[Any], window: int) -> Iterator[T]:
    """Under Prefect's RayTaskRunner the task runs inside the Ray cluster, which takes the shards too."""
    import ray

    remote = ray.remote(_apply)
    pending: deque[Any] = deque()
    for shard in shards:
        check_stop()
        pending.append(remote.remote(fn, shard))
        if len(pending) >= window:
            yield ray.get(pending.popleft())
    while pending:
        yield ray.get(pending.popleft())
