"""The text of a row that diversity methods embed, and its MiniLM embedding."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def row_text(messages: Any, which: str = "question") -> str:
    """question: the user turns; conversation: every turn."""
    if not isinstance(messages, list):
        return ""
    turns = [m for m in messages if isinstance(m, dict) and isinstance(m.get("content"), str)]
    if which == "question":
        turns = [m for m in turns if m.get("role") == "user"]
    return "\n".join(m["content"] for m in turns)


def embed_rows(conversations: Sequence[Any], which: str = "question") -> np.ndarray:
    """L2-normalised MiniLM embeddings (n, 384) of the rows' text."""
    from infuse.operators.common.models import embed

    return embed([row_text(m, which) for m in conversations])


def answer_text(messages: Any) -> str:
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        return str(messages[-1].get("content") or "")
    return ""
