"""Input files declared with `input_file`: resolved against the directory infuse runs from, their content (not
their place) in the cache key, and checked before a run; cpt's general text files through it."""
from __future__ import annotations

import json
import os
from types import SimpleNamespace

from pydantic import BaseModel, Field

from infuse.flows.recipe import ModelOptions
from infuse.operators.common.base import Strict
from infuse.tasks.cpt import Cpt, CptOptions
from infuse.operators.common.input_files import input_file
from infuse.tasks.framework.step import Step, StepOptions


class Source(Strict):
    path: str | None = input_file(description="a file of rows")
    weight: float = 1.0


class FileOptions(StepOptions):
    prompt: str | None = input_file(description="one file")
    texts: list[str] = input_file(default_factory=list, jsonl_fields=("text",), description="files of texts")
    sources: list[Source] = Field(default_factory=list)
    size: int = 3


class FileStep(Step):  # no name: not registered, so no recipe or other test sees it
    Options = FileOptions


def step_and_recipe(**opts) -> tuple[Step, object]:
    step = FileStep()
    step.name = "files_test"
    options = FileOptions.model_validate(opts)
    return step, SimpleNamespace(step_options=lambda name: options, model=ModelOptions())


def test_paths_are_resolved_and_the_key_has_the_content_not_the_place(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "p.txt").write_text("prompt", encoding="utf-8")
    (tmp_path / "a" / "t.jsonl").write_text('{"text": "one"}\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    step, recipe = step_and_recipe(prompt="a/p.txt", texts=["a/t.jsonl"], sources=[{"path": "a/t.jsonl"}, {}])
    cfg = step.config(recipe)
    assert cfg["prompt"] == str(tmp_path / "a" / "p.txt") and cfg["texts"] == [str(tmp_path / "a" / "t.jsonl")]
    assert cfg["sources"][0]["path"] == str(tmp_path / "a" / "t.jsonl") and cfg["sources"][1]["path"] is None
    assert "model" not in cfg, "only a step that uses_model gets the recipe's model section"
    assert step.key_config(cfg) == {"size": 3, "sources": [{"weight": 1.0}, {"weight": 1.0}]}
    assert set(step.fingerprint(cfg)["input_files"]) == {"prompt", "texts.0", "sources.0.path"}
    key = step.cache_key(cfg, {})

    os.rename(tmp_path / "a", tmp_path / "b")  # the same files elsewhere: the same key
    moved, _ = step_and_recipe(prompt="b/p.txt", texts=["b/t.jsonl"], sources=[{"path": "b/t.jsonl"}, {}])
    assert moved.cache_key(moved.config(recipe_for(moved, "b")), {}) == key
    (tmp_path / "b" / "p.txt").write_text("prompt, edited", encoding="utf-8")  # new content: a new key
    assert moved.cache_key(moved.config(recipe_for(moved, "b")), {}) != key
    assert step.cache_key({**cfg, "size": 4}, {}) != key


def recipe_for(step: Step, folder: str) -> object:
    return step_and_recipe(prompt=f"{folder}/p.txt", texts=[f"{folder}/t.jsonl"],
                           sources=[{"path": f"{folder}/t.jsonl"}, {}])[1]


def test_check_says_what_is_wrong_with_each_file_and_line(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text('{"text": "a\u2028b"}\n\n{"text": "c"}\n', encoding="utf-8")  # U+2028 inside a string is fine
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n{"txt": "b"}\nnot json\n[1]\n', encoding="utf-8")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    step, _ = step_and_recipe()
    cfg = {"prompt": str(tmp_path / "nothing.txt"), "size": 3,
           "texts": [str(good), str(bad), str(latin), str(tmp_path)], "sources": [{"path": str(bad)}]}
    problems = step.check(cfg)
    assert problems[0].startswith("prompt: no such file: ") and "nothing.txt" in problems[0]
    assert [p.split(": ", 1)[0] for p in problems[1:]] == ["texts.1"] * 3 + ["texts.2", "texts.3", "sources.0.path"]
    assert problems[1].endswith("bad.jsonl line 2: no `text` string")
    assert problems[2].endswith("bad.jsonl line 3: not valid JSON (Expecting value, column 1)")
    assert problems[3].endswith("bad.jsonl line 4: no `text` string")
    assert problems[4].endswith("latin.txt is not UTF-8 text (byte 3: b'\\xe9')")
    assert problems[5].endswith("is a folder, not a file")
    assert problems[6].endswith("bad.jsonl line 3: not valid JSON (Expecting value, column 1)"), \
        "sources.0.path asks for no fields: its lines only have to parse"
    assert step.check({"size": 3, "texts": [str(good)], "sources": []}) == []


def test_cpt_reads_its_general_text_through_input_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "g.jsonl").write_text(json.dumps({"text": "general"}) + "\n" + json.dumps({"body": 1}) + "\n",
                                      encoding="utf-8")
    options = CptOptions(enabled=True, general_text=["g.jsonl", "missing.txt"])
    recipe = SimpleNamespace(step_options=lambda name: options, model=ModelOptions(path="/models/base"))
    cpt = Cpt()
    cfg = cpt.config(recipe)
    assert cfg["general_text"] == [str(tmp_path / "g.jsonl"), str(tmp_path / "missing.txt")]
    assert cfg["model"] == ModelOptions(path="/models/base").model_dump(mode="json")
    assert "general_text" not in cpt.key_config(cfg) and cpt.key_config(cfg)["model"]["path"] == "/models/base"
    assert cpt.fingerprint(cfg)["input_files"]["general_text.1"] == f"missing:{tmp_path / 'missing.txt'}"
    problems = cpt.check(cfg)
    assert [p for p in problems if p.startswith("general_text")] == [
        "general_text.0: g.jsonl line 2: no `text` string",
        "general_text.1: no such file: missing.txt (relative paths are relative to the directory you run infuse "
        "from)"]


class Nested(BaseModel):
    inner: Source | None = None


def test_marked_options_are_found_in_optional_nested_models():
    from infuse.operators.common.input_files import file_options

    found = [(o.option, list(o.files())) for o in file_options(Nested, {"inner": {"path": "x.jsonl"}})]
    assert found == [("inner.path", [("inner.path", "x.jsonl")])]
    assert list(file_options(Nested, {"inner": None})) == []


def _weighted_problems(option: str, path: str, owner: dict) -> list[str]:
    """An operator's own check: it reads a sibling option (the source's weight) and replaces the common one."""
    return [f"{option}: weight {owner['weight']} for {os.path.basename(path)}"]


class CheckedSource(Strict):
    path: str | None = input_file(description="rows the operator checks itself", problems=_weighted_problems)
    weight: float = 1.0


class CheckedOptions(StepOptions):
    sources: list[CheckedSource] = Field(default_factory=list)


def test_an_operators_own_check_replaces_the_common_one_and_sees_its_siblings(tmp_path):
    step = FileStep()
    step.Options = CheckedOptions
    missing = str(tmp_path / "missing.jsonl")  # the common check would say "no such file"
    assert step.check({"sources": [{"path": missing, "weight": 2.5}, {"path": None}]}) == [
        "sources.0.path: weight 2.5 for missing.jsonl"]
    assert set(step.fingerprint({"sources": [{"path": missing}]})["input_files"]) == {"sources.0.path"}


def test_mix_and_preference_check_their_files_as_their_readers_read_them(tmp_path):
    from infuse.tasks.mix import Mix
    from infuse.tasks.preference import Preference

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n{\"prompt\": \"q\"}\n",
                     encoding="utf-8")
    problems = Preference().check({"user_data": [str(pairs)]})
    assert len(problems) == 1 and problems[0].startswith("user_data.0: ") and " line 2: " in problems[0]
    general = tmp_path / "g.csv"
    general.write_text("a,b\n", encoding="utf-8")
    assert Mix().check({"general": [{"path": str(general)}]}) == [
        f"general.0.path: {general} is not a .json, .jsonl, .ndjson, .parquet file"]
