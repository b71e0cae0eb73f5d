"""Recipe section `dedup`: exact, SimHash (data-juicer), MinHash-LSH (datasketch) and semantic (MiniLM) stages."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from infuse.operators.common.base import Strict


class SimhashConfig(Strict):
    """data-juicer's document_simhash_deduplicator params. tokenization `auto`
    uses `character` shingles for CJK-dominant chunks and `space` otherwise."""

    tokenization: Literal["auto", "space", "punctuation", "character"] = "auto"
    window_size: int = Field(6, ge=1)
    lowercase: bool = True
    ignore_pattern: str | None = r"\p{P}"
    num_blocks: int = Field(6, ge=2, le=16)
    hamming_distance: int = Field(4, ge=0)

    @model_validator(mode="after")
    def _blocks(self) -> "SimhashConfig":
        if self.hamming_distance >= self.num_blocks:
            raise ValueError("hamming_distance must be less than num_blocks")
        return self


class MinhashConfig(Strict):
    """MinHash-LSH. Shingles are `ngram` consecutive tokens, where a token is a
    word in space-separated text and a single character in CJK text (so
    Chinese gets character n-grams, English word shingles). bands x rows must
    not exceed num_perm; unset, they are datasketch's optimum for threshold.
    verify: keep an LSH candidate pair only if its estimated Jaccard >= threshold."""

    num_perm: int = Field(256, ge=16, le=1024)
    threshold: float = Field(0.7, gt=0, lt=1)
    ngram: int = Field(5, ge=1)
    seed: int = 1
    bands: int | None = Field(None, ge=1)
    rows: int | None = Field(None, ge=1)
    verify: bool = True

    @model_validator(mode="after")
    def _bands(self) -> "MinhashConfig":
        if (self.bands is None) != (self.rows is None):
            raise ValueError("set both bands and rows, or neither")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError("bands * rows must not exceed num_perm")
        return self


class SemanticConfig(Strict):
    """Embedding dedup (SemDeDup-style), off by default: the packaged MiniLM embeds each chunk,
    spherical k-means groups the embeddings, and only chunks of one cluster are compared; a pair at
    cosine >= threshold is a duplicate. MiniLM is an English model: for Chinese text its similarities
    mean little, so the stage applies to `langs` (default English) only.
    clusters: k (unset: about one cluster per `cluster_size` chunks)."""

    threshold: float = Field(0.8, gt=0, le=1, description="cosine similarity from which two chunks are duplicates")
    clusters: int | None = Field(None, ge=1)
    cluster_size: int = Field(1000, ge=2, description="aim for clusters of about this many chunks")
    langs: list[Literal["en", "zh"]] = Field(default_factory=lambda: ["en"])
    seed: int = 0


class DedupConfig(Strict):
    """Stages run in order (exact, simhash, minhash, semantic); each cluster keeps one chunk:
    `longest` text (ties: earliest) or `earliest` in input order. `null` turns a stage off."""

    exact: bool = True
    simhash: SimhashConfig | None = Field(default_factory=SimhashConfig)
    minhash: MinhashConfig | None = Field(default_factory=MinhashConfig)
    semantic: SemanticConfig | None = None
    keep: Literal["longest", "earliest"] = "longest"

    @classmethod
    def default(cls) -> "DedupConfig":
        """Design notes: exact + document_simhash_deduplicator (window 6, 6 blocks, distance 4), plus
        MinHash-LSH (Jaccard 0.7 of 5-grams): SimHash at distance 4 only catches near-verbatim copies, and
        misses a re-added paragraph with a new title and one added sentence, which MinHash catches."""
        return cls(exact=True, simhash=SimhashConfig(), minhash=MinhashConfig(), keep="longest")
