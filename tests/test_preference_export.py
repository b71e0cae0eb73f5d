"""Preference exports: every file follows its tool's documented rules and loads back into the same pairs.

The rules checked are the documented ones: LLaMA-Factory's data/README and its
sharegpt converter (a ranking row's turns alternate human/gpt from human and end
with human; chosen and rejected are single gpt turns; dataset_info keys and
columns), ms-swift's custom dataset doc (`messages` ending with the chosen
assistant turn, `rejected_response`), OpenAI's DPO guide (`input.messages`,
one assistant message in `preferred_output` and in `non_preferred_output`).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from infuse.operators.preference.export import write_pair_exports
from infuse.operators.preference.formats import read_user_pairs

PAIRS = [
    {"pair_id": "a", "prompt": [{"role": "user", "content": "What is the error code of LOTUS_EIO?"}],
     "chosen": "LOTUS_EIO has the error code -5.", "rejected": "The code is -4."},
    {"pair_id": "b", "prompt": [{"role": "system", "content": "Answer briefly."},
                                {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                                {"role": "user", "content": "端口是多少？\n请只写数字"}],
     "chosen": "默认端口是 7420。", "rejected": "默认端口是 8080。"},
]

# LLaMA-Factory's dataset_info.json keys, sharegpt columns and tags (data/README.md, parser.py DatasetAttr)
LF_KEYS = {"hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name", "file_name", "file_sha1",
           "formatting", "ranking", "subset", "split", "folder", "num_samples", "revision", "columns", "tags"}
LF_SHAREGPT_COLUMNS = {"messages", "system", "tools", "images", "videos", "audios", "chosen", "rejected", "kto_tag"}
LF_TAGS = {"role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag", "function_tag", "system_tag"}
SWIFT_KEYS = {"messages", "rejected_response", "label", "images", "videos", "audios", "tools", "objects"}


def _alternating(roles: list[str], first: str, second: str) -> bool:
    return all(r == (first, second)[i % 2] for i, r in enumerate(roles))


def lf_ranking_rows(dataset_dir: Path, name: str, cache: Path) -> list[tuple[list[dict], str, str]]:
    """A ranking dataset as LLaMA-Factory reads it: its dataset_info entry, `datasets.load_dataset("json")`, then
    the sharegpt rules; a row LLaMA-Factory would skip fails the test."""
    from datasets import load_dataset

    entry = json.loads((dataset_dir / "dataset_info.json").read_text(encoding="utf-8"))[name]
    assert set(entry) <= LF_KEYS, set(entry) - LF_KEYS
    assert entry["formatting"] == "sharegpt" and entry["ranking"] is True
    cols, tags = entry["columns"], entry["tags"]
    assert set(cols) <= LF_SHAREGPT_COLUMNS and {"messages", "chosen", "rejected"} <= set(cols)
    assert set(tags) <= LF_TAGS
    path = dataset_dir / entry["file_name"]
    assert not Path(entry["file_name"]).is_absolute() and path.is_file(), "relative to dataset_info.json"
    assert entry["file_sha1"] == hashlib.sha1(path.read_bytes()).hexdigest()
    out = []
    for ex in load_dataset("json", data_files=str(path), split="train", cache_dir=str(cache)):
        turns = ex[cols["messages"]]
        system = ex[cols["system"]] if "system" in cols else ""
        roles = [t[tags["role_tag"]] for t in turns]
        assert _alternating(roles, tags["user_tag"], tags["assistant_tag"]) and len(roles) % 2 == 1, roles
        chosen, rejected = ex[cols["chosen"]], ex[cols["rejected"]]
        assert isinstance(chosen, dict) and isinstance(rejected, dict)
        assert chosen[tags["role_tag"]] == rejected[tags["role_tag"]] == tags["assistant_tag"]
        assert chosen[tags["content_tag"]] != rejected[tags["content_tag"]]
        names = {tags["user_tag"]: "user", tags["assistant_tag"]: "assistant"}
        prompt = ([{"role": "system", "content": system}] if system else []) + [
            {"role": names[t[tags["role_tag"]]], "content": t[tags["content_tag"]]} for t in turns]
        out.append((prompt, chosen[tags["content_tag"]], rejected[tags["content_tag"]]))
    return out


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _want() -> list[tuple[list[dict], str, str]]:
    return [(p["prompt"], p["chosen"], p["rejected"]) for p in PAIRS]


def test_llama_factory_ranking_export_follows_its_rules_and_loads_back(tmp_path):
    files = write_pair_exports(tmp_path / "x", {"train": PAIRS})
    assert files["llamafactory/infuse_pref_train.jsonl"] == 2
    lf = tmp_path / "x" / "llamafactory"
    assert sorted(json.loads((lf / "dataset_info.json").read_text())) == ["infuse_pref_train"]
    assert lf_ranking_rows(lf, "infuse_pref_train", tmp_path / "hf") == _want()
    rows = _jsonl(lf / "infuse_pref_train.jsonl")
    assert rows[1]["system"] == "Answer briefly." and rows[1]["conversations"][0] == {"from": "human", "value": "Hi"}
    back, bad = read_user_pairs([str(lf / "infuse_pref_train.jsonl")])
    assert not bad and [(p["prompt"], p["chosen"], p["rejected"]) for p in back] == _want()


def test_swift_export_follows_its_rules(tmp_path):
    write_pair_exports(tmp_path, {"train": PAIRS}, ["swift"])
    rows = _jsonl(tmp_path / "swift" / "train.jsonl")
    assert not (tmp_path / "llamafactory").exists() and not (tmp_path / "openai").exists()
    assert len(rows) == 2
    for row, (prompt, chosen, rejected) in zip(rows, _want()):
        assert set(row) <= SWIFT_KEYS and {"messages", "rejected_response"} <= set(row)
        msgs = row["messages"]
        body = msgs[1:] if msgs[0]["role"] == "system" else msgs
        assert _alternating([m["role"] for m in body], "user", "assistant") and body[-1]["role"] == "assistant"
        assert all(set(m) == {"role", "content"} for m in msgs)
        assert msgs[:-1] == prompt and msgs[-1]["content"] == chosen
        assert row["rejected_response"] == rejected != chosen


def test_openai_export_follows_its_rules(tmp_path):
    write_pair_exports(tmp_path, {"train": PAIRS, "eval": []}, ["openai"])
    assert not (tmp_path / "openai" / "eval.jsonl").exists(), "an empty split gets no file"
    rows = _jsonl(tmp_path / "openai" / "train.jsonl")
    assert len(rows) == 2
    for row, (prompt, chosen, rejected) in zip(rows, _want()):
        assert set(row) == {"input", "preferred_output", "non_preferred_output"}
        msgs = row["input"]["messages"]
        body = msgs[1:] if msgs[0]["role"] == "system" else msgs
        assert _alternating([m["role"] for m in body], "user", "assistant") and body[-1]["role"] == "user"
        assert msgs == prompt
        assert row["preferred_output"] == [{"role": "assistant", "content": chosen}]
        assert row["non_preferred_output"] == [{"role": "assistant", "content": rejected}]
        assert chosen != rejected


def test_the_usage_names_the_files_it_wrote(tmp_path):
    write_pair_exports(tmp_path, {"train": PAIRS})
    readme = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert "dataset: infuse_pref_train" in readme and "stage: dpo" in readme
    assert "--dataset <this folder>/swift/train.jsonl" in readme and "openai/train.jsonl" in readme
    for name in ("llamafactory/infuse_pref_train.jsonl", "swift/train.jsonl", "openai/train.jsonl"):
        assert (tmp_path / name).is_file()


def test_a_user_pair_no_trainer_reads_is_a_reject_not_an_export(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"prompt": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "chosen": "x",
         "rejected": "y"},
        {"prompt": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "chosen": "x",
         "rejected": "y"},
        {"prompt": "same", "chosen": "x", "rejected": " x "},
        {"prompt": "fine", "chosen": "x", "rejected": "y"}]), encoding="utf-8")
    pairs, rejects = read_user_pairs([str(path)])
    assert [p["pair_id"] for p in pairs] == ["user:mine.jsonl:4"]
    assert [(r.id, r.reason) for r in rejects] == [(f"user:mine.jsonl:{i}", "malformed_pair") for i in (1, 2, 3)]


def test_user_pairs_are_split_at_newlines_only_and_validate_names_the_same_lines(tmp_path):
    """A U+2028 inside a JSON string is part of its line (str.splitlines() cut it, making two bad lines and
    shifting every later line's number); `infuse validate` reads the file the same way."""
    from infuse.operators.preference.formats import check_rows, pair_problem

    path = tmp_path / "mine.jsonl"
    text = (json.dumps({"prompt": "Line one\u2028line two?", "chosen": "Yes.", "rejected": "No."}, ensure_ascii=False)
            + "\n\n{broken\n" + json.dumps({"prompt": "Hi", "chosen": "a"}) + "\n")
    path.write_text(text, encoding="utf-8")
    pairs, rejects = read_user_pairs([str(path)])
    assert [(p["pair_id"], p["prompt"][0]["content"]) for p in pairs] == [("user:mine.jsonl:1", "Line one\u2028line two?")]
    assert [r.id for r in rejects] == ["user:mine.jsonl:3", "user:mine.jsonl:4"]
    assert [(where, pair_problem(row)) for where, row in check_rows(text, jsonl=True)] == [
        ("line 1", None), ("line 3", "not valid JSON (Expecting property name enclosed in double quotes, column 2)"),
        ("line 4", "no `rejected`")]
