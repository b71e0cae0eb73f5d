"""Errors that say what to fix: the option, the file, the line, the reasons counted.

`infuse validate` checks every file a recipe names (each step's `check()`), and
`infuse run` stops on the same problems before any step starts; a run whose
inputs are all rejected fails saying why instead of completing with 0 rows.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from infuse.flows.cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A folder to run infuse from, with one document: paths in messages are relative to it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Valves\n\nThe relief valve opens at 8 bar.\n")
    return tmp_path


def recipe(folder: Path, steps: dict, input_: str = "docs") -> str:
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump({"name": "errors", "input": input_, "storage": "runs", "steps": steps}))
    return "recipe.yaml"


def problems(output: str) -> list[str]:
    return [line[4:] for line in output.splitlines() if line.startswith("  - ")]


def validate_and_run(path: str) -> list[str]:
    """Both commands fail with exit 2 and the same problems, and run starts no step."""
    val = runner.invoke(app, ["validate", path])
    assert val.exit_code == 2, val.output
    run = runner.invoke(app, ["run", path])
    assert run.exit_code == 2, run.output
    assert problems(run.output) == problems(val.output)
    assert not Path("runs").exists(), "no step ran"
    return problems(val.output)


def test_a_missing_general_file_is_named_before_any_step_runs(here):
    found = validate_and_run(recipe(here, {"mix": {"general": [{"builtin": "general_en"},
                                                               {"path": "data/nope.jsonl"}]}}))
    assert found == ["steps.mix.general.1.path: no such file: data/nope.jsonl (relative paths are relative to the "
                     "directory you run infuse from)"]


def test_a_scheduled_run_of_a_recipe_whose_file_went_missing_fails_naming_it(here, prefect_server, monkeypatch):
    """A deployment's worker runs the flow with no CLI before it: the flow checks the recipe's files itself and
    ends Failed with the problem, before any step starts."""
    from prefect.client.orchestration import get_client

    from infuse.flows.pipeline import infuse_pipeline

    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # the test server, never a local one
    path = recipe(here, {"synthesize": {"max_llm_items": 0, "paraphrase": {"enabled": False}},
                         "mix": {"general": [{"path": "data/gone.jsonl"}]}})
    state = infuse_pipeline(path, return_state=True)
    assert state.is_failed()
    assert state.message == ("recipe.yaml: 1 problem(s), nothing ran:\n  - steps.mix.general.0.path: no such file: "
                             "data/gone.jsonl (relative paths are relative to the directory you run infuse from)")
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(state.state_details.flow_run_id).state.is_failed()
    assert not Path("runs").exists(), "no step ran"


def test_bad_rows_of_a_general_file_are_named_by_line(here):
    rows = [{"instruction": "a", "output": "b"}, {"conversations": [{"from": "human", "value": "hi"},
                                                                    {"from": "gpt", "value": "hello"}]}]
    (here / "general.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n{\"foo\": 1}\n{bad\n")
    found = validate_and_run(recipe(here, {"mix": {"general": [{"path": "general.jsonl"}]}}))
    assert found == [
        "steps.mix.general.0.path: general.jsonl line 4: unknown_format: not alpaca (instruction/output), sharegpt "
        "(conversations) or messages; keys: foo",
        "steps.mix.general.0.path: general.jsonl line 5: not valid JSON (Expecting property name enclosed in double "
        "quotes, column 2)"]


def test_a_malformed_line_of_the_user_question_file_is_named(here):
    (here / "questions.jsonl").write_text(
        '{"question": "At what pressure does the relief valve open?", "answer": "8 bar"}\n'
        '{"question": "Who?", "answer": "x"}\n'
        '{"question": "Why?" "answer": "y"}\n'
        '{"answer": "no question"}\n')
    found = validate_and_run(recipe(here, {"evaluate": {"enabled": True, "user_questions": "questions.jsonl"}}))
    assert found == [
        "steps.evaluate.user_questions: questions.jsonl line 3: not valid JSON (Expecting ',' delimiter, column 21)",
        "steps.evaluate.user_questions: questions.jsonl line 4: needs non-empty string `question` and `answer`"]


def test_pairs_prompts_and_general_text_files_are_checked_too(here):
    (here / "pairs.jsonl").write_text('{"prompt": "Hi", "chosen": "a", "rejected": "b"}\n'
                                      '{"prompt": "Hi", "chosen": "a"}\n')
    (here / "pairs.json").write_text('{"prompt": "Hi"}')
    (here / "texts.jsonl").write_text('{"text": "ok"}\n{"body": "no text"}\n')
    (here / "qa.yaml").write_text("system: [unclosed\n")
    found = validate_and_run(recipe(here, {
        "synthesize": {"prompt_overrides": {"qa_pairs": "qa.yaml", "qa_pair": "qa.yaml"}},
        "sft": {"enabled": True}, "cpt": {"enabled": True, "general_text": ["texts.jsonl"]},
        "preference": {"enabled": True, "user_data": ["pairs.jsonl", "pairs.json", "gone.jsonl"]}}))
    assert found[0].startswith("steps.synthesize.prompt_overrides.qa_pair: no packaged prompt is called 'qa_pair'")
    assert found[1:] == [
        "steps.synthesize.prompt_overrides.qa_pairs: qa.yaml line 2: not valid YAML (expected ',' or ']', but got "
        "'<stream end>')",
        "steps.cpt.general_text.0: texts.jsonl line 2: no `text` string",
        "steps.preference.user_data.0: pairs.jsonl line 2: no `rejected`",
        "steps.preference.user_data.1: pairs.json holds a JSON object, not a list of pairs (or name a .jsonl file, "
        "one pair a line)",
        "steps.preference.user_data.2: no such file: gone.jsonl (relative paths are relative to the directory you "
        "run infuse from)"]


def test_good_files_pass(here):
    (here / "general.json").write_text(json.dumps({"data": [{"instruction": "a", "output": "b"}]}))
    (here / "questions.jsonl").write_text('{"question": "Q?", "answer": "A", "aliases": ["a"]}\n\n')
    path = recipe(here, {"mix": {"general": [{"path": "general.json"}]},
                         "evaluate": {"enabled": True, "user_questions": "questions.jsonl"},
                         "sft": {"enabled": True},
                         "preference": {"enabled": True, "user_data": [str(REPO / "recipes" / "demo_pairs.jsonl")]},
                         "synthesize": {"prompt_overrides": {
                             "qa_pairs.en": str(REPO / "operators" / "prompts" / "qa_pairs.en.v2.yaml")}}})
    res = runner.invoke(app, ["validate", path])
    assert res.exit_code == 0, res.output


def test_a_folder_whose_files_are_all_too_large_fails_before_any_step(here):
    (here / "docs" / "a.md").write_text("# Big\n\n" + "x" * 1_600_000)
    found = validate_and_run(recipe(here, {"parse": {"max_file_mb": 1}}))
    assert found == ["steps.parse: all 1 input files were rejected (too_large: 1 — docs/a.md is 1.5 MB, over "
                     "max_file_mb 1); nothing to do"]


@pytest.mark.slow
def test_a_run_whose_files_are_all_rejected_fails_naming_the_reasons(here, prefect_server, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # the test server, never a local one
    (here / "docs" / "a.md").unlink()
    for name in ("manual.pdf", "specs.pdf"):
        (here / "docs" / name).write_bytes(b"%PDF-1.4 not really a PDF: " + name.encode())
    (here / "docs" / "notes.txt").write_text("")
    path = recipe(here, {"synthesize": {"enabled": False}})
    assert runner.invoke(app, ["validate", path]).exit_code == 0, "parse must read the PDFs to judge them"
    res = runner.invoke(app, ["run", path])
    assert res.exit_code == 1, res.output
    assert isinstance(res.exception, SystemExit), "an exit with the message, not an uncaught error"
    line = next(x for x in res.output.splitlines() if x.startswith("infuse run failed:"))
    assert line.startswith("infuse run failed: step parse failed: AllRejected: all 3 input files were rejected "
                           "(corrupt: 2 — docs/manual.pdf: not a readable PDF"), line
    assert line.endswith("; empty: 1 — docs/notes.txt: file is empty (0 bytes)); nothing to do"), line
    doc = json.loads(next((here / "runs" / "manifests").glob("[!l]*.json")).read_text())
    assert doc["status"] == "failed" and "all 3 input files were rejected" in doc["error"]
    assert set(doc["steps"]) == {"parse"} and doc["steps"]["parse"]["state"] == "Failed", "no later step ran"


def test_an_unfilled_identity_message_is_the_same_in_every_process():
    """The placeholders of a row are a set: the message must not depend on the process's hash seed (seeds 0
    and 3 iterate {name, author} in opposite orders)."""
    code = ("from infuse.operators.mix.identity import Identity\n"
            "from infuse.operators.mix.sample import RowError\n"
            "try:\n"
            "    Identity().fill([{'role': 'assistant', 'content': 'I am {{name}}, made by {{author}}.'}], 'en')\n"
            "except RowError as e:\n"
            "    print(e.message)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}) for seed in ("0", "3", "5")]
    messages = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert messages == {"the row uses {{author}} but steps.mix.identity.author (or synthesize.identity.author) is "
                        "not set"}
