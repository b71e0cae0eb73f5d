"""The step contract: a step is one file; UI artifacts from the real server; what invalidates a cache key."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from cli_helpers import cli_env, last_states, write_recipe

pytestmark = pytest.mark.usefixtures("prefect_server")

REPO = Path(__file__).resolve().parent.parent
PLUGIN = str(Path(__file__).with_name("plugin_steps.py"))
NO_LLM = {"synthesize": {"max_llm_items": 0, "paraphrase": {"enabled": False}}}


def _readme_step() -> str:
    """The step example of the README, as written there."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("# tasks/longest.py")
    return text[start:text.index("```", start)]


TOY_MODEL = '''
import json

from infuse.tasks.framework.step import Step, StepContext, StepOutput, StepReport, model


class TinyCard(Step):
    name = "tiny_card"
    stage = 76
    description = "a toy model step: a directory with a card"
    inputs = ("longest.qa",)
    outputs = {"model": model()}

    def run(self, ctx: StepContext) -> StepOutput:
        n = ctx.input("longest.qa").rows
        with ctx.dir_output("model") as out:
            (out.path / "card.json").write_text(json.dumps({"trained_on": n}))
            (out.path / "weights.bin").write_bytes(bytes(range(256)) * n)
        return StepOutput({"model": out.ref}, report=StepReport(rows_in=n, kept=n))
'''


def test_a_table_step_and_a_model_step_from_one_file_each(tmp_path, examples_copy):
    from infuse.flows.pipeline import infuse_pipeline

    (tmp_path / "longest_step.py").write_text(_readme_step())
    (tmp_path / "tiny_card.py").write_text(textwrap.dedent(TOY_MODEL))
    recipe = write_recipe(tmp_path / "r.yaml", examples_copy, tmp_path / "runs",
                          plugins=[str(tmp_path / "longest_step.py"), str(tmp_path / "tiny_card.py")],
                          steps={**NO_LLM, "longest": {"keep": 5}})
    state = infuse_pipeline(str(recipe), return_state=True)
    assert state.is_completed(), state.message
    res = state.result()
    assert res["longest"]["outputs"]["qa"]["rows"] == 5
    qa_in = res["qa_filter"]["outputs"]["qa"]["rows"]
    rejects = pq.read_table(res["longest"]["rejects"]["path"]).to_pylist()
    assert len(rejects) == qa_in - 5 and {r["reason"] for r in rejects} == {"not_longest"}
    model = res["tiny_card"]["outputs"]["model"]
    assert model["kind"] == "model" and json.loads((Path(model["path"]) / "card.json").read_text()) == {"trained_on": 5}
    # the recipe schema knows the plugin's options: a typo is an error that lists them
    from infuse.flows.recipe import RecipeError, load_recipe

    data = yaml.safe_load(recipe.read_text())
    data["steps"]["longest"] = {"kep": 5}
    recipe.write_text(yaml.safe_dump(data))
    with pytest.raises(RecipeError, match="steps.longest.kep: unknown key; allowed here: enabled, keep"):
        load_recipe(recipe)


def _artifacts(flow_run_id) -> dict[str, object]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {a.key: a for a in arts if a.key}


def test_ui_artifacts_on_success_and_on_failure(tmp_path, examples_copy):
    from infuse.flows.pipeline import infuse_pipeline

    recipe = write_recipe(tmp_path / "r.yaml", examples_copy, tmp_path / "runs", steps=NO_LLM)
    state = infuse_pipeline(str(recipe), return_state=True)
    arts = _artifacts(state.state_details.flow_run_id)
    res = state.result()
    counts = {r["metric"]: r["count"] for r in json.loads(arts["filter-counts"].data)}
    assert counts["chunks in"] == res["clean"]["outputs"]["chunks"]["rows"]
    assert counts["chunks kept"] == res["filter"]["outputs"]["chunks"]["rows"]
    assert counts["rejected"] == res["filter"]["stats"]["rejected"]
    summary = arts["filter-summary"].data
    assert res["filter"]["outputs"]["chunks"]["sha256"][:16] in summary and "data:image/png;base64," in summary
    run_summary = arts["run-summary"].data
    assert "completed" in run_summary and all(f"| {s} | Completed |" in run_summary for s in res)

    data = yaml.safe_load(recipe.read_text())
    data.update(plugins=[PLUGIN])
    data["steps"]["gate"] = {"fail": True}
    recipe.write_text(yaml.safe_dump(data))
    failed = infuse_pipeline(str(recipe), return_state=True)
    assert failed.is_failed()
    arts = _artifacts(failed.state_details.flow_run_id)
    run_summary = arts["run-summary"].data
    assert "**failed** at `gate`" in run_summary and "| gate | **Failed** |" in run_summary
    assert "gate was told to fail" in run_summary
    assert "| parse | Cached |" in run_summary and "clean" not in run_summary.split("| gate |")[1]


# ---------------------------------------------------------------- cache invalidation, in a copy of the repo

BOOT = """
import importlib.machinery, importlib.util, sys
ROOT = sys.argv.pop(1)
class CopyFinder:  # import infuse.* from the copy instead of the installed checkout
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        parts = name.split(".")
        if parts[0] != "infuse":
            return None
        if len(parts) == 1:
            spec = importlib.machinery.ModuleSpec("infuse", None, is_package=True)
            spec.submodule_search_locations = []
            return spec
        if len(parts) == 2:
            return importlib.machinery.PathFinder.find_spec(parts[1], [ROOT]) and \\
                importlib.util.spec_from_file_location(name, f"{ROOT}/{parts[1]}/__init__.py",
                                                       submodule_search_locations=[f"{ROOT}/{parts[1]}"])
        return None
sys.meta_path.insert(0, CopyFinder)
from infuse.flows.cli import main
sys.argv[0] = "infuse"
main()
"""


def _copy_repo(dst: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()  # the tree as it is
    for f in files:
        if f.startswith(("flows/", "tasks/", "operators/", "storage/", "deploy/")) and (REPO / f).is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dst / f)
    (dst / "boot.py").write_text(BOOT)
    return dst


def _run_copy(copy: Path, recipe: Path, cwd: Path) -> dict[str, str]:
    res = subprocess.run([sys.executable, str(copy / "boot.py"), str(copy), "run", str(recipe)], cwd=cwd,
                         env=cli_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return last_states(Path(yaml.safe_load(recipe.read_text())["storage"]))


@pytest.mark.slow
def test_cache_invalidation_in_a_copy_of_the_repo(tmp_path, examples_copy):
    from faulty_server import FaultyServer

    import infuse.flows.steps  # noqa: F401  (the pipeline's steps, registered)
    from infuse.tasks.framework.step import ordered_steps

    copy = _copy_repo(tmp_path / "repo")
    override = tmp_path / "my_qa.yaml"
    shutil.copy(REPO / "operators/prompts/qa_pairs.en.v2.yaml", override)

    def content(body: dict) -> str:  # the question echoes the system prompt: a prompt edit changes the data
        sys_or_user = body["messages"][0]["content"]
        user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        return json.dumps({"qa": [{"question": sys_or_user[:30], "answer": user[-200:]}]})

    with FaultyServer(fail_rate=0.0, seed=0, content_fn=content) as server:
        recipe = write_recipe(tmp_path / "r.yaml", examples_copy, tmp_path / "runs", steps={"synthesize": {
            "llm": {"backend": "openai", "base_url": server.base_url, "model": "m", "max_retries": 0},
            "by_format": {"default": ["qa"]}, "paraphrase": {"enabled": False}, "max_llm_items": 2,
            "prompt_overrides": {"qa_pairs": str(override)}}})
        _run_copy(copy, recipe, tmp_path)

        # 1. edit an operator module: exactly the steps whose code imports it recompute
        module = "infuse.operators.chunk.sentences"
        importers = {c.name for c in ordered_steps() if module in c.key_modules()}
        assert importers == {"chunk"}
        with (copy / "operators" / "chunk" / "sentences.py").open("a") as f:
            f.write("\n# an edit that changes no behaviour\n")
        states = _run_copy(copy, recipe, tmp_path)
        assert {s for s, st in states.items() if st != "Cached"} == importers, states

        # 2. edit the prompt override file: synthesize and what follows recompute (mix mixes the new qa)
        text = override.read_text()
        override.write_text(text.replace("system: |-\n  ", "system: |-\n  (Answer as an expert.) ", 1))
        assert override.read_text() != text
        states = _run_copy(copy, recipe, tmp_path)
        assert {s for s, st in states.items() if st != "Cached"} == {"synthesize", "qa_filter", "mix"}, states

        # 3. change retries (how a step runs, not what it makes): nothing recomputes
        data = yaml.safe_load(recipe.read_text())
        data["steps"]["clean"] = {"retries": 3}
        data["steps"]["synthesize"]["llm"]["timeout_s"] = 300
        recipe.write_text(yaml.safe_dump(data))
        states = _run_copy(copy, recipe, tmp_path)
        assert set(states.values()) == {"Cached"}, states


TRAIN_STEPS = str(Path(__file__).with_name("train_steps.py"))


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.slow
def test_sft_key_covers_the_training_code_and_not_its_progress_text(tmp_path):
    """rows -> sft (2 LoRA steps of a tiny model) in a copy of the repo: rewording the progress bar's text (the
    framework's and the training's) keeps sft Cached; a comment added to the SFT operator retrains it."""
    from tiny_models import fact_rows, make_tiny_model

    copy = _copy_repo(tmp_path / "repo")
    tiny = make_tiny_model(tmp_path / "tiny")
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in fact_rows(1)), encoding="utf-8")
    (tmp_path / "docs").mkdir()
    off = {s: {"enabled": False} for s in ("parse", "chunk", "clean", "filter", "dedup", "synthesize", "qa_filter")}
    recipe = write_recipe(tmp_path / "r.yaml", tmp_path / "docs", tmp_path / "runs", plugins=[TRAIN_STEPS],
                          model={"path": str(tiny)},
                          steps={**off, "rows": {"path": str(tmp_path / "rows.jsonl")},
                                 "sft": {"enabled": True, "method": "lora", "max_steps": 2, "batch_size": 1,
                                         "max_length": 64, "save_steps": 100, "lora": {"r": 4, "alpha": 8}}})
    assert _run_copy(copy, recipe, tmp_path) == {"rows": "Completed", "sft": "Completed"}

    _edit(copy / "tasks" / "framework" / "progress.py", '{unit} done"', '{unit} finished"')
    _edit(copy / "tasks" / "framework" / "training_report.py", "checkpoint at step", "checkpoint saved at step")
    assert _run_copy(copy, recipe, tmp_path) == {"rows": "Cached", "sft": "Cached"}

    with (copy / "operators" / "train" / "sft.py").open("a", encoding="utf-8") as f:
        f.write("\n# an edit that changes no behaviour\n")
    assert _run_copy(copy, recipe, tmp_path) == {"rows": "Cached", "sft": "Completed"}
