"""A run's stop request, kept as a file under its storage root so that every process of the run sees it.

The flow stops a run by setting the STOP event (operators/common/base.py), but
that event lives in the flow's process. Under a Dask or Ray runner a step runs
in a worker process, and its shards in others, possibly on other machines:
what they share with the flow is the storage root. So a stopping flow also
writes `runstate/<run id>/stop` there, and work on the workers checks for it
between units.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from infuse.storage.store import ArtifactStore


@lru_cache(maxsize=8)
def _store(root: str) -> ArtifactStore:
    """One store per root and process: a worker checks the marker once per shard."""
    return ArtifactStore(root)


@dataclass(frozen=True)
class StopMarker:
    """Where one run's stop request is written; small and picklable, so it travels with shards."""

    root: str
    run_id: str

    @property
    def relpath(self) -> str:
        return f"runstate/{self.run_id}/stop"

    def request(self, reason: str) -> None:
        _store(self.root).write_json(self.relpath, {"reason": reason, "at": time.time()})

    def requested(self) -> bool:
        store = _store(self.root)
        return bool(store.fs.exists(store.url(self.relpath)))

    def to_runtime(self) -> dict[str, str]:
        """The marker as a step's `runtime` carries it to the task (a Prefect parameter: plain JSON)."""
        return {"root": self.root, "run_id": self.run_id}

    @classmethod
    def from_runtime(cls, runtime: dict[str, Any]) -> "StopMarker | None":
        """The marker of the run a step belongs to; None when its runner needs none (local: STOP reaches it)."""
        found = runtime.get("stop_marker")
        return cls(found["root"], found["run_id"]) if found else None
