"""Step `dedup`: exact (normalised hash), SimHash (data-juicer) and MinHash-LSH (datasketch)."""
from infuse.operators.dedup.config import DedupConfig, MinhashConfig, SimhashConfig
from infuse.operators.dedup.deduper import REASONS, Deduper

__all__ = ["REASONS", "DedupConfig", "Deduper", "MinhashConfig", "SimhashConfig"]
