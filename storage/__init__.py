"""The artifact store: tables (Parquet), models and reports (directories) under a local path or any
fsspec URL, committed atomically; and the run manifests."""
from infuse.storage.manifest import RunManifest
from infuse.storage.store import REJECTS_SCHEMA, ArtifactRef, ArtifactStore, ArtifactWriter, DirOutput

__all__ = ["ArtifactRef", "ArtifactStore", "ArtifactWriter", "DirOutput", "REJECTS_SCHEMA", "RunManifest"]
