"""The rows synthesis writes: QA samples, work items and per-item statuses."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from infuse.operators.common.base import stable_hash

QA_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ("doc_id", pa.string()),  # "" for samples with no source (identity)
        ("chunk_id", pa.string()),  # the chunk the sample was made from ("" when none)
        ("source_chunk_ids", pa.list_(pa.string())),  # every chunk whose text was used (RAG: all retrieved)
        ("span_start", pa.int64()),  # [start, end) of the supporting text in documents.text; null when none
        ("span_end", pa.int64()),
        ("strategy", pa.string()),  # e.g. qa, rag, record_template, qa+paraphrase
        ("generator", pa.string()),  # LLM model name, or "template"
        ("prompt_version", pa.string()),  # "qa_pairs.zh.v1@1a2b3c4d" (+ more joined by '+')
        ("usage_prompt_tokens", pa.int64()),
        ("usage_completion_tokens", pa.int64()),
        ("lang", pa.string()),
        ("format", pa.string()),
        # the assistant turn is a self-contained passage (rewrite, summary): cpt may take it as plain text
        ("cpt_text", pa.bool_()),
        ("meta", pa.string()),  # JSON of strategy specifics: RAFT's citation and distractors, a dialogue's turns
    ]
)

ITEM_STATUS_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("strategy", pa.string()),
        ("key", pa.string()),
        ("status", pa.string()),  # done | failed
        ("error_kind", pa.string()),
        ("error", pa.string()),
        ("raw_text", pa.string()),
        ("n_samples", pa.int64()),
        ("calls", pa.int64()),
        ("failed_calls", pa.int64()),
        ("usage_prompt_tokens", pa.int64()),
        ("usage_completion_tokens", pa.int64()),
    ]
)


@dataclass
class WorkItem:
    """One unit of synthesis: a strategy applied to one chunk (or document, or nothing for identity)."""

    item_id: str
    strategy: str
    chunk_id: str  # "" for document-level and source-less items
    doc_id: str
    lang: str
    format: str
    prompt_version: str
    params: dict[str, Any] = field(default_factory=dict)
    text_chars: int = 0  # size of the source text, for estimates (not part of the id)
    expected_samples: int = 0  # known exactly for templates; 0 = depends on the LLM

    @property
    def key(self) -> str:
        return self.chunk_id or self.doc_id or "-"


def meta_of(raw: Any) -> dict[str, Any]:
    """A sample's `meta` (JSON text in the QA and SFT tables, or already a dict) as a dict; {} when it is empty or
    not a JSON object. The one reader of the column: qa_filter, mix, coverage, preference and evaluate use it."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return {}
    return raw if isinstance(raw, dict) else {}


def item_id_for(strategy: str, key: str, prompt_version: str, params: dict[str, Any] | None = None) -> str:
    return stable_hash([strategy, key, prompt_version, params or {}])[:32]


@dataclass
class ItemStatus:
    """How one item ended. `done` may still carry an error: some calls failed but samples were made."""

    item_id: str
    status: str  # done | failed
    error_kind: str | None = None
    error: str | None = None
    raw_text: str | None = None
    n_samples: int = 0
    strategy: str = ""
    key: str = ""
    calls: int = 0
    failed_calls: int = 0
    usage_prompt_tokens: int = 0
    usage_completion_tokens: int = 0

    def to_row(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ITEM_STATUS_SCHEMA.names}


@dataclass
class Draft:
    """A sample before ids and usage are filled in."""

    question: str
    answer: str
    strategy: str
    prompt_version: str
    chunk_id: str = ""
    doc_id: str = ""
    source_chunk_ids: list[str] = field(default_factory=list)
    span_start: int | None = None
    span_end: int | None = None
    generator: str = "template"
    usage: dict[str, int] = field(default_factory=dict)  # usage of calls that made this sample alone
    lang: str = ""
    format: str = ""
    turns: list[dict[str, str]] | None = None  # full multi-turn messages, overriding question/answer
    cpt_text: bool = False  # the answer is a passage that stands alone (see QA_SCHEMA.cpt_text)
    meta: dict[str, Any] = field(default_factory=dict)
