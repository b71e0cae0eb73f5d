"""One chat sample on its way through the mix, and the checks every source's rows pass.

A sample is valid when its messages are an optional system turn, then user and
assistant turns alternating, ending with the assistant, all non-empty text:
the one shape every export format (alpaca with history, sharegpt, messages)
can carry without loss.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from infuse.operators.synthesize.schema import meta_of
from infuse.operators.common.tokens import tokens

Message = dict[str, str]


class RowError(Exception):
    """A malformed row: a reject with this reason, never a crash."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass
class Sample:
    sample_id: str
    messages: list[Message]
    source: str
    kind: str  # domain | general | identity
    ref: str  # where it came from, for rejects: the domain sample_id or "<source>#<row index>"
    doc_id: str = ""
    chunk_id: str = ""
    span_start: int | None = None
    span_end: int | None = None
    strategy: str = ""
    lang: str = ""
    split: str = ""
    meta: str = ""  # synthesis' JSON (facts: fact_id, short, aliases, heldout), kept for evaluate and preference

    @cached_property
    def fact(self) -> dict[str, Any]:
        """The synthesis meta of a `facts` row ({} for any other row)."""
        return meta_of(self.meta) if self.strategy.startswith("facts") else {}

    @property
    def group(self) -> str:
        """What the split keeps together: a chunk's rows (its question and their paraphrases), else the row."""
        return self.chunk_id or self.sample_id

    def copy(self, k: int) -> "Sample":
        """The k-th repeat of an up-sampled row (k >= 1): the same sample under its own id."""
        return replace(self, sample_id=f"{self.sample_id}~r{k}", messages=[dict(m) for m in self.messages])

    def to_row(self) -> dict[str, Any]:
        return {"sample_id": self.sample_id, "messages": self.messages, "source": self.source, "kind": self.kind,
                "doc_id": self.doc_id, "chunk_id": self.chunk_id, "span_start": self.span_start,
                "span_end": self.span_end, "strategy": self.strategy, "lang": self.lang, "split": self.split,
                "meta": self.meta}


def _plain(i: int, m: Any) -> Message:
    """Message i as a plain {role, content} dict, or RowError."""
    if not isinstance(m, dict):
        raise RowError("malformed_row", f"message {i} is not an object")
    role, content = m.get("role"), m.get("content")
    if role not in ("system", "user", "assistant"):
        raise RowError("unsupported_role", f"message {i} has role {role!r}; only system, user and "
                                           f"assistant are mixed (no tool turns)")
    if not isinstance(content, str):
        raise RowError("malformed_row", f"message {i} ({role}) has no text content")
    return {"role": role, "content": content}


def _check_turns(body: list[Message]) -> None:
    """The turns after an optional system message: user and assistant alternating, the assistant last,
    none empty; else RowError."""
    if not body:
        raise RowError("bad_turns", "only a system message")
    for i, m in enumerate(body):
        want = "user" if i % 2 == 0 else "assistant"
        if m["role"] != want:
            raise RowError("bad_turns", f"turn {i} is {m['role']}, expected {want}: user and assistant must "
                                        f"alternate after an optional first system message")
    if body[-1]["role"] != "assistant":
        raise RowError("bad_turns", "the last turn is not the assistant's")
    for m in body:
        if not m["content"].strip():
            raise RowError("empty_content", f"an empty {m['role']} turn")


def check_messages(messages: Any) -> list[Message]:
    """The messages as plain {role, content} dicts, or RowError saying what is wrong with them."""
    if not isinstance(messages, list) or not messages:
        raise RowError("missing_field", "no messages")
    out = [_plain(i, m) for i, m in enumerate(messages)]
    has_system = out[0]["role"] == "system"
    _check_turns(out[1:] if has_system else out)
    if has_system and not out[0]["content"].strip():
        out = out[1:]  # an empty system prompt says nothing: drop it
    return out


def prompt_key(messages: list[Message]) -> str:
    """The normalised prompt (every user turn, NFKC, case-folded, punctuation and spacing dropped):
    what cross-source dedup compares."""
    return " ".join(tokens("\n".join(m["content"] for m in messages if m["role"] == "user")))


def content_id(source: str, messages: list[Message]) -> str:
    """A sample id from the source and the content, so it does not move when rows are added to a file."""
    blob = json.dumps([source, messages], ensure_ascii=False, sort_keys=True).encode()
    return f"{source}-{hashlib.sha256(blob).hexdigest()[:16]}"


def unit_hash(seed: int, *parts: str) -> float:
    """A seeded hash in [0, 1): the split and the sampling rank rows by it, so adding rows never moves
    the others."""
    digest = hashlib.sha256(json.dumps([seed, *parts], ensure_ascii=False).encode()).hexdigest()
    return int(digest[:15], 16) / 16**15
