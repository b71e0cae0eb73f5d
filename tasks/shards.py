"""Run a per-shard function over a stream of record batches, here or on a Dask cluster.

Under the recipe's `runner: {kind: dask}` the flow runs on Prefect's
DaskTaskRunner, and a step fans its shards out to the same cluster through
prefect-dask's client; under `kind: ray` (the `ray` extra) it runs on
RayTaskRunner and the shards become Ray tasks. A bounded window of shards is in flight at a time, so
the corpus is never held in memory whole; results come back in input order.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def map_shards(fn: Callable[[Any], T], shards: Iterable[Any], runtime: dict[str, Any]) -> Iterator[T]:
    kind = runtime.get("runner", "local")
    window = max(2, 2 * int(runtime.get("workers", 2)))
    if kind == "local":
        for shard in shards:
            yield fn(shard)
        return
    if kind == "ray":
        yield from _map_ray(fn, shards, window)
        return
    if kind != "dask":
        raise ValueError(f"runner {kind!r} cannot fan out shards; use local, dask or ray")
    from prefect_dask import get_dask_client

    with get_dask_client() as client:
        pending: deque[Any] = deque()
        for shard in shards:
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
        pending.append(remote.remote(fn, shard))
        if len(pending) >= window:
            yield ray.get(pending.popleft())
    while pending:
        yield ray.get(pending.popleft())
