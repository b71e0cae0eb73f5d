"""User-supplied preference pairs, in the two shapes people have them in.

- LLaMA-Factory's (ShareGPT-style) JSON: a list of
  `{"conversations": [{"from": "human"|"gpt"|"system", "value": ...}, ...],
    "chosen": {"from": "gpt", "value": ...}, "rejected": {...}}`, optionally with
  a top-level `system`; its alpaca style `{"instruction", "input", "chosen", "rejected"}` too.
- JSONL with `prompt` (a string, or a list of {role, content}), `chosen` and
  `rejected` (strings, or one assistant message each).

A row that is neither, whose prompt turns do not alternate user/assistant
ending with the user, or whose chosen equals its rejected, is a reject with
the file and line, never the end of the run.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infuse.operators.common.base import Reject

ROLE = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system",
        "observation": "user"}


def _reply(x: Any) -> str | None:
    if isinstance(x, str):
        return x
    if isinstance(x, dict):
        value = x.get("value", x.get("content"))
        return value if isinstance(value, str) else None
    if isinstance(x, list) and len(x) == 1:
        return _reply(x[0])
    return None


def _messages(turns: Any) -> list[dict[str, str]] | None:
    if isinstance(turns, str):
        return [{"role": "user", "content": turns}]
    if not isinstance(turns, list) or not turns:
        return None
    out = []
    for t in turns:
        if not isinstance(t, dict):
            return None
        role = ROLE.get(str(t.get("from", t.get("role"))))
        content = t.get("value", t.get("content"))
        if role is None or not isinstance(content, str):
            return None
        out.append({"role": role, "content": content})
    return out if _alternates(out) else None


def _alternates(messages: list[dict[str, str]]) -> bool:
    """An optional first system turn, then user and assistant turns alternating and ending with the user, none
    empty: the one prompt shape every trainer (and every export) reads the same."""
    body = messages[1:] if messages[0]["role"] == "system" else messages
    return bool(body) and len(body) % 2 == 1 and all(
        m["role"] == ("user", "assistant")[i % 2] and m["content"].strip() for i, m in enumerate(body))


def parse_row(row: Any) -> tuple[list[dict[str, str]], str, str] | None:
    """(prompt messages, chosen, rejected) of one user row, or None when it is malformed."""
    if not isinstance(row, dict):
        return None
    if "conversations" in row:
        prompt = _messages(row["conversations"])
    elif "instruction" in row:
        text = "\n".join(x for x in (row.get("instruction"), row.get("input")) if isinstance(x, str) and x)
        prompt = _messages(text) if text else None
    else:
        prompt = _messages(row.get("prompt"))
    if prompt is None:
        return None
    if isinstance(row.get("system"), str) and row["system"] and prompt[0]["role"] != "system":
        prompt = [{"role": "system", "content": row["system"]}, *prompt]
    chosen, rejected = _reply(row.get("chosen")), _reply(row.get("rejected"))
    if not chosen or not rejected or not chosen.strip() or not rejected.strip() or chosen.strip() == rejected.strip():
        return None
    return prompt, chosen, rejected


def _rows(path: Path) -> list[tuple[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        out = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    out.append((f"{path.name}:{n}", json.loads(line)))
                except json.JSONDecodeError:
                    out.append((f"{path.name}:{n}", None))
        return out
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError(f"{path}: a preference JSON file must hold a list of pairs")
    return [(f"{path.name}:{i}", r) for i, r in enumerate(data)]


def read_user_pairs(paths: list[str], limit: int | None = None) -> tuple[list[dict[str, Any]], list[Reject]]:
    """PAIR_SCHEMA rows from the files (at most `limit` per file), and a reject per malformed row."""
    pairs: list[dict[str, Any]] = []
    rejects: list[Reject] = []
    for name in paths:
        path = Path(name)
        taken = 0
        for rid, row in _rows(path):
            if limit is not None and taken >= limit:
                break
            parsed = parse_row(row)
            if parsed is None:
                rejects.append(Reject(f"user:{rid}", "malformed_pair", "not a preference pair: needs a prompt "
                                      "(conversations, instruction or prompt) of alternating turns ending with the "
                                      "user, and non-empty, different chosen and rejected",
                                      {"file": path.name}))
                continue
            prompt, chosen, rejected = parsed
            pairs.append({"pair_id": f"user:{rid}", "prompt": prompt, "chosen": chosen, "rejected": rejected,
                          "origin": f"user:{path.name}", "rejected_from": "user", "sample_id": "", "chunk_id": "",
                          "lang": "", "rejected_grounding": None, "similarity": None, "fact_id": None,
                          "rejected_strict": None})
            taken += 1
    return pairs, rejects
