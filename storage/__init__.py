"""The artifact store: Parquet under a local path or any fsspec URL, written atomically."""
from storage.store import ArtifactRef, ArtifactStore, ArtifactWriter
from storage.manifest import RunManifest

__all__ = ["ArtifactRef", "ArtifactStore", "ArtifactWriter", "RunManifest"]
