"""The artifact store: Parquet under a local path or any fsspec URL, written atomically."""
from infuse.storage.store import ArtifactRef, ArtifactStore, ArtifactWriter
from infuse.storage.manifest import RunManifest

__all__ = ["ArtifactRef", "ArtifactStore", "ArtifactWriter", "RunManifest"]
