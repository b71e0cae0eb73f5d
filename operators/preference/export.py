"""Exports of the preference pairs for other trainers: LLaMA-Factory, ms-swift, OpenAI (as mix exports the SFT data).

- `llamafactory/`: ShareGPT-style ranking JSON Lines, `{"conversations":
  [human/gpt turns ending with human], "system": ..., "chosen": {"from": "gpt",
  "value": ...}, "rejected": {...}}`, plus a `dataset_info.json` entry with
  `"ranking": true` and every column named (LLaMA-Factory sets a column that a
  `columns` block leaves out to none, and chosen/rejected have no default).
- `swift/`: ms-swift's RLHF rows, `{"messages": [..., {"role": "assistant",
  "content": chosen}], "rejected_response": rejected}`.
- `openai/`: OpenAI preference fine-tuning rows, `{"input": {"messages": [...]},
  "preferred_output": [assistant], "non_preferred_output": [assistant]}`.

A split with no pairs gets no file. The file writing, sharegpt turns and
column/tag maps are mix's (operators/mix/export.py), so both exports agree.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infuse.operators.mix.export import (PREFIX, SHAREGPT_COLUMNS, SHAREGPT_TAGS, _sha1, _write_jsonl, to_chat,
                                         to_sharegpt)
from infuse.operators.mix.sample import Message

FORMATS = ("llamafactory", "swift", "openai")
LF_COLUMNS = {**SHAREGPT_COLUMNS, "chosen": "chosen", "rejected": "rejected"}


def _prompt(pair: dict[str, Any]) -> list[Message]:
    return [{"role": m["role"], "content": m["content"]} for m in pair["prompt"]]


def _assistant(text: str) -> Message:
    return {"role": "assistant", "content": text}


def to_lf_ranking(pair: dict[str, Any]) -> dict[str, Any]:
    """LLaMA-Factory's sharegpt preference row: the prompt's turns, then chosen and rejected as gpt turns."""
    return {**to_sharegpt(_prompt(pair)), "chosen": {"from": "gpt", "value": pair["chosen"]},
            "rejected": {"from": "gpt", "value": pair["rejected"]}}


def to_swift(pair: dict[str, Any]) -> dict[str, Any]:
    """ms-swift's DPO row: the chosen reply is the last assistant message, the rejected one beside it."""
    return {**to_chat(_prompt(pair) + [_assistant(pair["chosen"])]), "rejected_response": pair["rejected"]}


def to_openai(pair: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's preference (DPO) fine-tuning row."""
    return {"input": to_chat(_prompt(pair)), "preferred_output": [_assistant(pair["chosen"])],
            "non_preferred_output": [_assistant(pair["rejected"])]}


def lf_name(split: str) -> str:
    return f"{PREFIX}_pref_{split}"


def _write_llamafactory(root: Path, splits: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    folder = root / "llamafactory"
    folder.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {}
    written: dict[str, int] = {}
    for split, pairs in splits.items():
        path = folder / f"{lf_name(split)}.jsonl"
        _write_jsonl(path, [to_lf_ranking(p) for p in pairs])
        info[lf_name(split)] = {"file_name": path.name, "file_sha1": _sha1(path), "formatting": "sharegpt",
                                "ranking": True, "columns": dict(LF_COLUMNS), "tags": dict(SHAREGPT_TAGS)}
        written[f"llamafactory/{path.name}"] = len(pairs)
    (folder / "dataset_info.json").write_text(json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8")
    return written


def write_pair_exports(root: Path, splits: dict[str, list[dict[str, Any]]],
                       formats: list[str] | tuple[str, ...] = FORMATS) -> dict[str, int]:
    """Write every export of every non-empty split of PAIR_SCHEMA rows under `root`; returns {relative path: rows}."""
    splits = {k: v for k, v in splits.items() if v}
    written: dict[str, int] = {}
    if "llamafactory" in formats:
        written |= _write_llamafactory(root, splits)
    for fmt, convert in (("swift", to_swift), ("openai", to_openai)):
        if fmt in formats:
            for split, pairs in splits.items():
                _write_jsonl(root / fmt / f"{split}.jsonl", [convert(p) for p in pairs])
                written[f"{fmt}/{split}.jsonl"] = len(pairs)
    root.mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text(usage(sorted(splits), formats), encoding="utf-8")
    return written


def usage(splits: list[str], formats: list[str] | tuple[str, ...], where: str = "<this folder>", level: int = 1
          ) -> str:
    """How to run DPO on these files with each tool: saved beside them (level 1 headings), and in the step's
    report under its own heading (level 3), with the real folder as `where`."""
    h = "#" * level
    lines = [f"{h} infuse preference exports", ""]
    if not splits:
        return "\n".join(lines + ["No pairs were made: there is nothing to export.", ""])
    if "llamafactory" in formats:
        lines += [f"{h}# LLaMA-Factory", "", "In the training YAML:", "", "```yaml", "stage: dpo",
                  f"dataset_dir: {where}/llamafactory", f"dataset: {lf_name('train')}"]
        if "eval" in splits:
            lines.append(f"eval_dataset: {lf_name('eval')}")
        lines += ["pref_beta: 0.1", "```", ""]
    if "swift" in formats:
        eval_arg = f" --val_dataset {where}/swift/eval.jsonl" if "eval" in splits else ""
        lines += [f"{h}# ms-swift", "", "```bash",
                  f"swift rlhf --rlhf_type dpo --model <model> --dataset {where}/swift/train.jsonl{eval_arg} ...",
                  "```", ""]
    if "openai" in formats:
        lines += [f"{h}# OpenAI fine-tuning", "", f"Upload `{where}/openai/train.jsonl`"
                  + (f" (and `{where}/openai/eval.jsonl` as the validation file)" if "eval" in splits else "")
                  + ' with `purpose=fine-tune`, then create the job with `method={"type": "dpo", "dpo": '
                    '{"hyperparameters": {"beta": 0.1}}}`.', ""]
    return "\n".join(lines)


def report_note(files: dict[str, int], formats: list[str] | tuple[str, ...], where: str) -> str:
    """The exports' folder and how to run DPO on them, for the step's report (appended to its summary)."""
    return "\n\n" + f"Exports in `{where}`.\n\n" + usage(["train"] if files else [], formats, where, level=3)
