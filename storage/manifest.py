"""Per-run manifest: the lineage of every step, as one JSON file per flow run.

runs/<root>/manifests/<run_id>.json, rewritten atomically after each step, and
manifests/latest.json pointing at the newest completed run, so `infuse show`
and `infuse run --from STEP` find a consistent set of artifacts.
"""
from __future__ import annotations

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

    def record(self, step: str, entry: dict[str, Any]) -> None:
        """Record one step's lineage (inputs' hashes, config hash, code version, counts, wall time)."""
        self.steps[step] = entry
        self.save()

    def save(self, status: str = "running") -> None:
        doc = {
            "run_id": self.run_id,
            "recipe_path": self.recipe_path,
            "recipe": self.recipe,
            "started_at": self.started_at,
            "updated_at": time.time(),
            "status": status,
            "steps": self.steps,
        }
        self.store.write_json(f"manifests/{self.run_id}.json", doc)
        if status == "completed":  # `latest` is the last complete run: what show and --from build on
            self.store.write_json("manifests/latest.json", {"run_id": self.run_id})

    @staticmethod
    def load_latest(store: ArtifactStore) -> dict[str, Any] | None:
        latest = store.read_json("manifests/latest.json")
        if not latest:
            return None
        return store.read_json(f"manifests/{latest['run_id']}.json")
