"""The dedup step's signature index across runs: each chunk's signatures, kept per code and config
under `cache-dedup`, so a run after adding documents signs only the new chunks."""
from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:  # the step hands its store in
    from infuse.storage import ArtifactStore

INDEX_STEP = "cache-dedup"


def prior_index(store: "ArtifactStore", version: str, current_ids: set[str]) -> pa.Table | None:
    """The stored signatures of the chunks still present in this run's input (None: no index yet)."""
    ref = store.committed(INDEX_STEP, version, "signatures")
    if ref is None:
        return None
    index = store.read(ref)
    mask = pa.array([cid in current_ids for cid in index.column("chunk_id").to_pylist()], pa.bool_())
    return index.filter(mask)


def save_index(store: "ArtifactStore", version: str, index: pa.Table) -> None:
    """This run's signatures, for the next run (they replace the last index)."""
    store.write_table(INDEX_STEP, version, "signatures", index)


def report_markdown(info: dict) -> str:
    return (f"signatures computed / reused from the index: {info.get('computed')} / {info.get('loaded')}\n\n"
            f"clusters by stage: {info.get('clusters')}")
