"""The artifact store: tables (Parquet), models and reports (directories) under a local path or any
fsspec URL, committed atomically; the run manifests; a run's stop request."""
from infuse.storage.manifest import RunManifest
from infuse.storage.runstate import StopMarker
from infuse.storage.store import REJECTS_SCHEMA, ArtifactRef, ArtifactStore, ArtifactWriter, DirOutput

__all__ = ["ArtifactRef", "ArtifactStore", "ArtifactWriter", "DirOutput", "REJECTS_SCHEMA", "RunManifest", "StopMarker"]
