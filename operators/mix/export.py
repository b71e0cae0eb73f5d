"""Exports of every split for other trainers: LLaMA-Factory, ms-swift, OpenAI.

- `llamafactory/`: alpaca and sharegpt JSON Lines plus a `dataset_info.json`
  that LLaMA-Factory reads as is (`dataset_dir: <this folder>`). Its `columns`
  map every column explicitly, since LLaMA-Factory sets a column that a
  `columns` block leaves out to none; multi-turn alpaca rows carry the earlier
  turns in `history`, the system prompt in `system`; sharegpt rows use
  human/gpt turns with the system prompt in a `system` column.
- `swift/`: ms-swift's standard `{"messages": [...]}` JSON Lines.
- `openai/`: OpenAI chat fine-tuning JSON Lines (`{"messages": [...]}` only).

A split with no rows gets no file. Every file loads back into the same
messages (tests/test_mix.py reads them with LLaMA-Factory's rules).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from infuse.operators.mix.sample import Message

PREFIX = "infuse"
ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output", "history": "history",
                  "system": "system"}
SHAREGPT_COLUMNS = {"messages": "conversations", "system": "system"}
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                 "system_tag": "system"}
_SHAREGPT_ROLE = {"user": "human", "assistant": "gpt"}


def _split_system(messages: list[Message]) -> tuple[str, list[Message]]:
    if messages and messages[0]["role"] == "system":
        return messages[0]["content"], messages[1:]
    return "", messages


def to_alpaca(messages: list[Message]) -> dict[str, Any]:
    system, turns = _split_system(messages)
    pairs = [[turns[i]["content"], turns[i + 1]["content"]] for i in range(0, len(turns) - 2, 2)]
    return {"instruction": turns[-2]["content"], "input": "", "output": turns[-1]["content"], "system": system,
            "history": pairs}


def to_sharegpt(messages: list[Message]) -> dict[str, Any]:
    system, turns = _split_system(messages)
    return {"conversations": [{"from": _SHAREGPT_ROLE[m["role"]], "value": m["content"]} for m in turns],
            "system": system}


def to_chat(messages: list[Message]) -> dict[str, Any]:
    """ms-swift's and OpenAI's shape: the messages, system first when there is one."""
    return {"messages": [{"role": m["role"], "content": m["content"]} for m in messages]}


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def llamafactory_name(split: str, formatting: str) -> str:
    return f"{PREFIX}_{split}_{formatting}"


def write_exports(root: Path, splits: dict[str, list[list[Message]]],
                  formats: list[str] | tuple[str, ...] = ("llamafactory", "swift", "openai")) -> dict[str, int]:
    """Write every export of every non-empty split under `root`; returns {relative path: rows}."""
    written: dict[str, int] = {}
    splits = {k: v for k, v in splits.items() if v}
    if "llamafactory" in formats:
        info: dict[str, Any] = {}
        for split, rows in splits.items():
            for formatting, convert in (("alpaca", to_alpaca), ("sharegpt", to_sharegpt)):
                name = llamafactory_name(split, formatting)
                path = root / "llamafactory" / f"{name}.jsonl"
                _write_jsonl(path, [convert(m) for m in rows])
                entry: dict[str, Any] = {"file_name": path.name, "file_sha1": _sha1(path), "formatting": formatting}
                if formatting == "alpaca":
                    entry["columns"] = dict(ALPACA_COLUMNS)
                else:
                    entry["columns"] = dict(SHAREGPT_COLUMNS)
                    entry["tags"] = dict(SHAREGPT_TAGS)
                info[name] = entry
                written[f"llamafactory/{path.name}"] = len(rows)
        (root / "llamafactory").mkdir(parents=True, exist_ok=True)
        (root / "llamafactory" / "dataset_info.json").write_text(json.dumps(info, ensure_ascii=False, indent=2),
                                                                encoding="utf-8")
    for fmt in ("swift", "openai"):
        if fmt in formats:
            for split, rows in splits.items():
                _write_jsonl(root / fmt / f"{split}.jsonl", [to_chat(m) for m in rows])
                written[f"{fmt}/{split}.jsonl"] = len(rows)
    (root / "README.md").write_text(usage(sorted(splits), formats), encoding="utf-8")
    return written


def usage(splits: list[str], formats: list[str] | tuple[str, ...]) -> str:
    """How to train on these files with each tool (saved beside them)."""
    lines = ["# infuse mix exports", ""]
    if "llamafactory" in formats:
        lines += ["## LLaMA-Factory", "", "In the training YAML:", "", "```yaml",
                  "dataset_dir: <this folder>/llamafactory",
                  f"dataset: {llamafactory_name('train', 'sharegpt')}     # or {llamafactory_name('train', 'alpaca')}"]
        if "eval" in splits:
            lines.append(f"eval_dataset: {llamafactory_name('eval', 'sharegpt')}")
        lines += ["```", ""]
    if "swift" in formats:
        eval_arg = " --val_dataset <this folder>/swift/eval.jsonl" if "eval" in splits else ""
        lines += ["## ms-swift", "", "```bash", f"swift sft --dataset <this folder>/swift/train.jsonl{eval_arg} ...",
                  "```", ""]
    if "openai" in formats:
        lines += ["## OpenAI fine-tuning", "", "Upload `openai/train.jsonl` (and `openai/eval.jsonl` as the "
                  "validation file) with `purpose=fine-tune`.", ""]
    return "\n".join(lines)
