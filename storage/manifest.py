"""Per-run manifest: the lineage of every step, as one JSON file per flow run.

runs/<root>/manifests/<run_id>.json is rewritten atomically as each step
commits (so a killed run still shows what it finished), with the process
that runs it (host, pid: how a later run tells a crashed run from a live one).
manifests/latest.json points at the newest completed run.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from infuse.storage.store import ArtifactStore


@dataclass
class RunManifest:
    store: ArtifactStore
    run_id: str
    recipe: dict[str, Any]
    recipe_path: str = ""
    started_at: float = field(default_factory=time.time)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: str = "running"
    error: str | None = None

    def record(self, step: str, entry: dict[str, Any]) -> None:
        """Record one step's lineage (inputs' hashes, config, code version, counts, wall time) and save."""
        self.steps[step] = entry
        self.save()

    def save(self, status: str | None = None, error: str | None = None) -> None:
        if status is not None:
            self.status = status
        if error is not None:
            self.error = error
        doc = {
            "run_id": self.run_id,
            "recipe_path": self.recipe_path,
            "recipe": self.recipe,
            "started_at": self.started_at,
            "updated_at": time.time(),
            "status": self.status,
            "error": self.error,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "steps": self.steps,
        }
        self.store.write_json(f"manifests/{self.run_id}.json", doc)
        if self.status == "completed":  # `latest` is the last complete run
            self.store.write_json("manifests/latest.json", {"run_id": self.run_id})

    @staticmethod
    def load_latest(store: ArtifactStore) -> dict[str, Any] | None:
        latest = store.read_json("manifests/latest.json")
        if not latest:
            return None
        return store.read_json(f"manifests/{latest['run_id']}.json")

    @staticmethod
    def all_runs(store: ArtifactStore) -> list[dict[str, Any]]:
        """Every run's manifest, newest first (completed, failed, interrupted or killed alike)."""
        out = []
        for path in store.fs.glob(store.url("manifests", "*.json")):
            name = path.rsplit("/", 1)[-1]
            if name == "latest.json":
                continue
            doc = store.read_json(f"manifests/{name}")
            if doc and "steps" in doc:
                out.append(doc)
        return sorted(out, key=lambda d: d.get("updated_at", 0), reverse=True)

    @staticmethod
    def committed_entry(store: ArtifactStore, doc: dict[str, Any], step: str) -> dict[str, Any] | None:
        """A run's entry for a step, only if every artifact it names is still committed as recorded."""
        entry = doc.get("steps", {}).get(step)
        if not entry or "outputs" not in entry or entry.get("state") in ("Failed", "Interrupted"):
            return None
        if store.step_committed(step, entry["key"]) is None:
            return None
        return entry

    @classmethod
    def find_step(cls, store: ArtifactStore, step: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The newest run whose `step` output is still committed: (manifest, step entry)."""
        for doc in cls.all_runs(store):
            entry = cls.committed_entry(store, doc, step)
            if entry is not None:
                return doc, entry
        return None
