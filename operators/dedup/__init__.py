"""Step `dedup`: exact (normalised hash), SimHash (data-juicer), MinHash-LSH (datasketch), semantic (MiniLM)."""
from infuse.operators.dedup.config import DedupConfig, MinhashConfig, SemanticConfig, SimhashConfig
from infuse.operators.dedup.deduper import REASONS, Deduper

__all__ = ["REASONS", "DedupConfig", "Deduper", "MinhashConfig", "SemanticConfig", "SimhashConfig"]
