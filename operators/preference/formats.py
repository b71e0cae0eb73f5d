"""User-supplied preference pairs, in the two shapes people have them in.

- LLaMA-Factory's (ShareGPT-style) JSON: a list of
  `{"conversations": [{"from": "human"|"gpt"|"system", "value": ...}, ...],
    "chosen": {"from": "gpt", "value": ...}, "rejected": {...}}`, optionally with
  a top-level `system`; its alpaca style `{"instruction", "input", "chosen", "rejected"}` too.
- JSONL with `prompt` (a string, or a list of {role, content}), `chosen` and
  `rejected` (strings, or one assistant message each).

A row that is neither, whose prompt turns do not alternate user/assistant
ending with the user, or whose chosen equals its rejected, is a reject with
the file and line, never the end of the run. `check_rows` and `pair_problem`
say the same of a file for `infuse validate`, before the run.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infuse.operators.common.base import Reject
from infuse.operators.common.jsonl import Line, parse_lines, read_jsonl

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


def _prompt(row: dict[str, Any]) -> list[dict[str, str]] | None:
    """The row's prompt turns (conversations, instruction + input, or prompt), its `system` put first."""
    if "conversations" in row:
        prompt = _messages(row["conversations"])
    elif "instruction" in row:
        text = "\n".join(x for x in (row.get("instruction"), row.get("input")) if isinstance(x, str) and x)
        prompt = _messages(text) if text else None
    else:
        prompt = _messages(row.get("prompt"))
    if prompt is not None and isinstance(row.get("system"), str) and row["system"] and prompt[0]["role"] != "system":
        prompt = [{"role": "system", "content": row["system"]}, *prompt]
    return prompt


def _replies(row: dict[str, Any]) -> tuple[str, str] | None:
    """(chosen, rejected) when both are non-empty text and they differ."""
    chosen, rejected = _reply(row.get("chosen")), _reply(row.get("rejected"))
    if not (chosen or "").strip() or not (rejected or "").strip() or chosen.strip() == rejected.strip():
        return None
    return chosen, rejected


def parse_row(row: Any) -> tuple[list[dict[str, str]], str, str] | None:
    """(prompt messages, chosen, rejected) of one user row, or None when it is malformed."""
    if not isinstance(row, dict):
        return None
    prompt = _prompt(row)
    replies = _replies(row) if prompt is not None else None
    return None if replies is None else (prompt, *replies)


def pair_problem(row: Any) -> str | None:
    """Why read_user_pairs would drop this row as malformed_pair (None: it is a pair); a line that is not JSON
    comes as its Line."""
    if isinstance(row, Line):
        return row.message
    if parse_row(row) is not None:
        return None
    if not isinstance(row, dict):
        return f"a pair is a JSON object; got {type(row).__name__}"
    missing = [] if {"conversations", "instruction", "prompt"} & set(row) else [
        "a prompt (`conversations`, `instruction` or `prompt`)"]
    missing += [f"`{k}`" for k in ("chosen", "rejected") if k not in row]
    if missing:
        return "no " + ", no ".join(missing)
    return ("not a preference pair: the prompt's turns must alternate user and assistant and end with the user, "
            "and chosen and rejected must be non-empty and different")


class PairsFileError(ValueError):
    """Why a user pairs file cannot be read as pairs at all (said after the file's name)."""


def _json_list(text: str) -> list[Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise PairsFileError(f"line {e.lineno}: {Line(e.lineno, error=e).message}") from e
    if not isinstance(data, list):
        kind = "object" if isinstance(data, dict) else type(data).__name__
        raise PairsFileError(f"holds a JSON {kind}, not a list of pairs (or name a .jsonl file, one pair a line)")
    return data


def check_rows(text: str, jsonl: bool) -> list[tuple[str, Any]]:
    """A user pairs file's rows as `infuse validate` names them: ("line N", row) of JSON Lines, read as
    read_user_pairs reads them (a line that is not JSON as its Line), or ("pair i", row) of a JSON list.
    PairsFileError when there are none, or the JSON is not a list."""
    if jsonl:
        rows = [(f"line {line.number}", line.value if line.ok else line) for line in parse_lines(text)]
    else:
        rows = [(f"pair {i}", row) for i, row in enumerate(_json_list(text))]
    if not rows:
        raise PairsFileError("has no pairs")
    return rows


def _rows(path: Path) -> list[tuple[str, Any]]:
    if path.suffix == ".jsonl":
        return [(f"{path.name}:{line.number}", line.value if line.ok else None) for line in read_jsonl(path)]
    data = json.loads(path.read_text(encoding="utf-8"))
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
