"""The flow end to end on real files with a real Prefect server: caching, incremental parse, re-runs."""
from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

pytestmark = pytest.mark.usefixtures("prefect_server")


STEPS = ["parse", "chunk", "clean", "filter", "dedup", "synthesize", "qa_filter", "mix"]
ALL_DONE = dict.fromkeys(STEPS, "Completed")
ALL_CACHED = dict.fromkeys(STEPS, "Cached")


def write_recipe(tmp_path: Path, docs: Path, **chunk: int) -> Path:
    recipe = {
        "name": "test",
        "input": str(docs),
        "storage": str(tmp_path / "runs"),
        "steps": {"parse": {"max_file_mb": 5}, "chunk": {"target_chars": 400, "max_chars": 800, **chunk},
                  # templates only: LLM synthesis has its own tests (test_synthesize_flow.py)
                  "synthesize": {"max_llm_items": 0, "paraphrase": {"enabled": False}}},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def run(recipe: Path, **kw):
    """Run the flow; return (flow state, {task name: state name}, results)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from infuse.flows.pipeline import infuse_pipeline

    state = infuse_pipeline(str(recipe), return_state=True, **kw)
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    states = {tr.name: tr.state.name for tr in runs}
    results = state.result(raise_on_failure=False)
    return state, states, results


def test_cold_then_cached_then_incremental(tmp_path, examples_copy):
    recipe = write_recipe(tmp_path, examples_copy)
    state, states, res = run(recipe)
    assert state.is_completed(), state.message
    assert states == ALL_DONE
    parse = res["parse"]["stats"]
    assert parse["files_from_cache"] == 0 and parse["files_parsed"] > 0

    # every example file is accounted for: in documents or in rejects
    docs = pq.read_table(res["parse"]["outputs"]["documents"]["path"]).to_pandas()
    rejects = pq.read_table(res["parse"]["rejects"]["path"]).to_pandas()
    files = {str(p.relative_to(examples_copy)) for p in examples_copy.rglob("*") if p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(examples_copy).parts)}
    assert files == set(docs["path"]) | set(rejects["id"])
    assert {"corrupt", "empty"} <= set(rejects["reason"])

    # every chunk ends in the dedup output or in exactly one rejects artifact
    ids = lambda ref: pq.read_table(ref["path"], columns=["chunk_id"]).column("chunk_id").to_pylist()  # noqa: E731
    chunk_ids = ids(res["chunk"]["outputs"]["chunks"])
    kept = ids(res["dedup"]["outputs"]["chunks"])
    dropped = [i for step in ("clean", "filter", "dedup")
               for i in pq.read_table(res[step]["rejects"]["path"]).column("id").to_pylist()]
    assert len(dropped) == len(set(dropped)), "a chunk is rejected at most once"
    assert sorted(kept + dropped) == sorted(chunk_ids)
    # synthesis: with max_llm_items 0 every LLM item is skipped with that reason, not silently
    synth_rejects = pq.read_table(res["synthesize"]["rejects"]["path"]).to_pylist()
    assert synth_rejects and {r["reason"] for r in synth_rejects} <= {"over_max_llm_items", "no_work_item"}
    assert any(r["reason"] == "over_max_llm_items" for r in synth_rejects)
    # qa_filter reports the answer-length distribution: median in its stats, a histogram in its report
    lengths = res["qa_filter"]["stats"]["answer_length"]
    assert lengths["n"] > 0 and lengths["p10"] <= lengths["median"] <= lengths["p90"]
    assert (Path(res["qa_filter"]["report"]["path"]) / "answer-length.png").stat().st_size > 0

    # second run: everything Cached, same outputs
    state2, states2, res2 = run(recipe)
    assert states2 == ALL_CACHED
    assert res2["chunk"]["outputs"]["chunks"]["sha256"] == res["chunk"]["outputs"]["chunks"]["sha256"]

    # add one file: parse re-runs but parses only that file; chunk re-runs
    (examples_copy / "new_note.md").write_text("# New note\n\nA fresh document about LotusDB backups. "
                                               "Backups run nightly at 02:00.\n", encoding="utf-8")
    _, states3, res3 = run(recipe)
    assert states3 == ALL_DONE
    assert res3["parse"]["stats"]["files_parsed"] == 1
    assert res3["parse"]["stats"]["files_from_cache"] == res["parse"]["stats"]["files_parsed"]
    docs3 = pq.read_table(res3["parse"]["outputs"]["documents"]["path"]).to_pandas()
    assert "new_note.md" in set(docs3["path"])
    # chunk, clean and filter stats compute only the new document's rows; the rest come from their memo
    assert res3["chunk"]["stats"]["memo_misses"] == 1
    assert res3["chunk"]["stats"]["memo_hits"] == res["chunk"]["stats"]["memo_misses"]
    assert res3["clean"]["stats"]["memo_misses"] == res3["chunk"]["outputs"]["chunks"]["rows"] - \
        res["chunk"]["outputs"]["chunks"]["rows"]
    # dedup signs only the chunks it has not seen; the others come from the stored signatures
    new_chunks = set(ids(res3["filter"]["outputs"]["chunks"])) - set(ids(res["filter"]["outputs"]["chunks"]))
    dd = res3["dedup"]["stats"]["dedup"]
    assert len(new_chunks) >= 1
    assert dd["signatures_computed"]["exact"] == len(new_chunks)
    assert dd["signatures_loaded"]["exact"] == len(ids(res["filter"]["outputs"]["chunks"]))

    # remove it again: the folder is as in the first run, so that output comes back from the cache
    (examples_copy / "new_note.md").unlink()
    _, states4, res4 = run(recipe)
    assert states4 == ALL_CACHED
    docs4 = pq.read_table(res4["parse"]["outputs"]["documents"]["path"]).to_pandas()
    assert "new_note.md" not in set(docs4["path"])
    assert res4["parse"]["outputs"]["documents"]["sha256"] == res["parse"]["outputs"]["documents"]["sha256"]


PLUGIN = str(Path(__file__).with_name("plugin_steps.py"))


def test_failed_step_reruns_alone_after_fix(tmp_path, examples_copy):
    """A step that fails at run time (the tests' `gate` plugin step, told to fail) stops the run;
    after the fix it re-runs alone and everything upstream comes back Cached."""
    bad = write_recipe(tmp_path, examples_copy, overlap_chars=50)
    recipe_data = yaml.safe_load(bad.read_text())
    recipe_data["plugins"] = [PLUGIN]
    recipe_data["steps"]["gate"] = {"fail": True}
    bad.write_text(yaml.safe_dump(recipe_data))
    state, states, _ = run(bad)
    assert state.is_failed() and "gate was told to fail" in state.message
    assert states == {"parse": "Completed", "chunk": "Completed", "gate": "Failed"}, "nothing after it runs"

    recipe_data["steps"]["gate"]["fail"] = False  # the fix
    bad.write_text(yaml.safe_dump(recipe_data))
    state, states, res = run(bad)
    assert state.is_completed()
    assert states == {**ALL_DONE, "parse": "Cached", "chunk": "Cached", "gate": "Completed"}
    assert res["gate"]["outputs"]["chunks"]["rows"] == res["chunk"]["outputs"]["chunks"]["rows"] > 0
    del recipe_data["steps"]["gate"]
    recipe_data["plugins"] = []
    bad.write_text(yaml.safe_dump(recipe_data))
    run(bad)

    # --from chunk: parse is not run at all, its output comes from the last run
    _, states, _ = run(bad, from_step="chunk")
    assert states == {s: "Cached" for s in STEPS[1:]}
    # --refresh chunk: recompute chunk (and what follows), parse stays cached
    _, states, _ = run(bad, refresh=["chunk"])
    assert states == {**ALL_DONE, "parse": "Cached"}
    # --only dedup: just that step, on the last run's chunks
    _, states, _ = run(bad, only="dedup", refresh=["dedup"])
    assert states == {"dedup": "Completed"}


def test_deleted_output_is_recomputed(tmp_path, examples_copy):
    recipe = write_recipe(tmp_path, examples_copy)
    _, _, res = run(recipe)
    Path(res["chunk"]["outputs"]["chunks"]["path"]).unlink()
    _, states, res2 = run(recipe)
    assert states == {**ALL_CACHED, "chunk": "Completed"}, "chunk's output is rebuilt byte-identical, so what follows stays cached"
    assert Path(res2["chunk"]["outputs"]["chunks"]["path"]).exists()


def test_only_then_from_keeps_the_lineage_complete(tmp_path, examples_copy):
    """After --only, the run manifest lists the step and everything upstream (not the now-stale
    downstream), so a later --from finds its inputs."""
    from infuse.storage import ArtifactStore, RunManifest

    recipe = write_recipe(tmp_path, examples_copy)
    run(recipe)
    _, states, _ = run(recipe, only="dedup")
    assert states == {"dedup": "Cached"}
    manifest = RunManifest.load_latest(ArtifactStore(str(tmp_path / "runs")))
    assert list(manifest["steps"]) == STEPS[:5]
    assert manifest["steps"]["parse"]["state"] == "Reused"
    _, states, _ = run(recipe, from_step="synthesize")
    assert states == {"synthesize": "Cached", "qa_filter": "Cached", "mix": "Cached"}


def test_renamed_file_is_parsed_again_under_its_new_name(tmp_path, examples_copy):
    """The per-file parse cache is keyed by content AND path: the extension picks the parser."""
    recipe = write_recipe(tmp_path, examples_copy)
    _, _, res = run(recipe, only="parse")
    (examples_copy / "lotusdb_faq_zh.md").rename(examples_copy / "lotusdb_faq_zh.txt")
    _, _, res2 = run(recipe, only="parse")
    assert res2["parse"]["stats"]["files_parsed"] == 1
    docs = pq.read_table(res2["parse"]["outputs"]["documents"]["path"]).to_pandas().set_index("path")
    assert docs.loc["lotusdb_faq_zh.txt", "format"] == "txt"


def test_missing_input_folder_fails_with_a_clear_error(tmp_path):
    from typer.testing import CliRunner

    from infuse.flows.cli import app

    recipe = write_recipe(tmp_path, tmp_path / "no-such-folder")
    state, _, _ = run(recipe)
    assert state.is_failed() and "does not exist" in state.message
    res = CliRunner().invoke(app, ["run", str(recipe)])
    assert res.exit_code == 2 and "does not exist or is not a folder" in res.output


def test_llm_runtime_settings_do_not_change_the_synthesis_key():
    from infuse.tasks.synthesize import Synthesize

    base = {"llm": {"backend": "openai", "model": "m", "base_url": "http://x/v1", "timeout_s": 30,
                    "concurrency": 8}, "questions_per_chunk": 5, "retries": 0}
    slower = {**base, "llm": {**base["llm"], "timeout_s": 300, "concurrency": 64}, "retries": 3}
    other_model = {**base, "llm": {**base["llm"], "model": "n"}}
    key = lambda cfg: Synthesize().cache_key(cfg, {})  # noqa: E731
    assert key(base) == key(slower)
    assert key(base) != key(other_model)


def test_same_bytes_under_two_names_keeps_the_first(tmp_path, examples_copy):
    import shutil

    shutil.copy(examples_copy / "lotusdb_faq_zh.md", examples_copy / "zz_copy_of_faq.md")
    shutil.copy(examples_copy / "rejects" / "truncated_guide.pdf", examples_copy / "zz_copy_of_truncated.pdf")
    _, _, res = run(write_recipe(tmp_path, examples_copy), only="parse")
    rejects = {r["id"]: r for r in pq.read_table(res["parse"]["rejects"]["path"]).to_pylist()}
    assert rejects["zz_copy_of_faq.md"]["reason"] == "duplicate_file"
    assert "lotusdb_faq_zh.md" in rejects["zz_copy_of_faq.md"]["message"]
    assert rejects["zz_copy_of_truncated.pdf"]["reason"] == "duplicate_file"
    assert rejects["rejects/truncated_guide.pdf"]["reason"] == "corrupt"
    assert rejects["rejects/empty_notes.txt"]["reason"] == "empty"
