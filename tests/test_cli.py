"""The CLI's offline commands: validate, steps, show (a .parquet file, or a step or artifact of a stored run)."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from infuse.flows.cli import app

runner = CliRunner()


def test_validate_ok_and_errors(tmp_path):
    ok = runner.invoke(app, ["validate", "recipes/demo.yaml"])
    assert ok.exit_code == 0 and "ok" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: x\nsteps:\n  chunk:\n    size: 3\n")
    res = runner.invoke(app, ["validate", str(bad)])
    assert res.exit_code == 2
    assert "steps.chunk.size: unknown key; allowed here:" in res.output


def test_a_default_step_without_its_input_is_skipped_but_an_asked_for_one_is_an_error(tmp_path):
    from conftest import EXAMPLES

    off = tmp_path / "off.yaml"
    off.write_text(f"input: {EXAMPLES}\nsteps:\n  synthesize: {{enabled: false}}\n")
    res = runner.invoke(app, ["validate", str(off)])
    assert res.exit_code == 0, res.output
    lines = {line.split()[0]: line for line in res.output.splitlines() if line.startswith("  ")}
    assert "off (skipped: needs `qa`" in lines["mix"] and "off (skipped" in lines["qa_filter"]
    assert "on " in lines["dedup"]
    asked = tmp_path / "asked.yaml"
    asked.write_text(f"input: {EXAMPLES}\nsteps:\n  synthesize: {{enabled: false}}\n  mix: {{enabled: true}}\n")
    res = runner.invoke(app, ["validate", str(asked)])
    assert res.exit_code == 2 and "steps.mix: needs `qa`, but no enabled step before it writes 'qa'" in res.output


def test_steps_lists_pipeline_in_order():
    from infuse.tasks.framework.step import REGISTRY

    res = runner.invoke(app, ["steps"])
    assert res.exit_code == 0
    names = [line.split()[0] for line in res.output.splitlines() if line and not line.startswith(" ")]
    builtin = {n for n, c in REGISTRY.items() if c.__module__.startswith("infuse.")}  # not other tests' plug-ins
    assert set(names) == builtin, "every registered step is listed"
    assert names[:7] == ["parse", "chunk", "clean", "filter", "dedup", "synthesize", "qa_filter"]
    stages = [REGISTRY[n].stage for n in names]
    assert stages == sorted(stages), "in pipeline order"
    assert "documents -> chunks" in res.output.replace("  ", " ")


def test_show_parquet_file(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "n": [1, 2]}), path)
    res = runner.invoke(app, ["show", str(path)])
    assert res.exit_code == 0
    assert "rows: 2" in res.output and "id: string" in res.output


def test_plan_estimates_without_calling_an_llm(tmp_path, prefect_server, monkeypatch):
    import yaml

    from conftest import EXAMPLES

    monkeypatch.setenv("PREFECT_API_URL", "")  # keep the CLI on the test harness, not a local server
    monkeypatch.delenv("PREFECT_API_URL")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "input": str(EXAMPLES), "storage": str(tmp_path / "runs"),
        # an endpoint that does not exist: planning must not call it
        "steps": {"synthesize": {"llm": {"backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"},
                                 "max_llm_items": 3}},
    }))
    res = runner.invoke(app, ["plan", str(recipe)])
    assert res.exit_code == 0, res.output
    lines = {line.split()[0]: line.split()[1:] for line in res.output.splitlines() if line.strip()}
    assert lines["qa"][0] == "3", "3 LLM items, as capped"
    assert int(lines["qa"][1]) >= 3 and int(lines["qa"][2]) > 0, "requests and prompt tokens estimated"
    assert lines["facts"][1] == "0", "templates need no request"
    assert not (tmp_path / "runs" / "artifacts" / "synthesize").exists(), "nothing was synthesized"


def test_show_cuts_wide_text_to_the_terminal_and_full_shows_it_all(tmp_path, monkeypatch):
    path = tmp_path / "docs.parquet"
    body = "LotusDB 是一款嵌入式键值数据库。\n" * 200 + "THE END"
    pq.write_table(pa.table({"doc_id": ["d1", "d2"], "text": [body, "short"], "pages": [[1, 2], []]}), path)
    monkeypatch.setenv("COLUMNS", "80")
    res = runner.invoke(app, ["show", str(path)])
    assert res.exit_code == 0
    head = res.output.split("pages: list<element: int64>\n", 1)[1]
    from wcwidth import wcswidth

    assert all(wcswidth(line) <= 80 for line in head.splitlines()), head
    assert "THE END" not in head and "…" in head and "d2" in head and "[1, 2]" in head
    full = runner.invoke(app, ["show", str(path), "--full"])
    assert full.exit_code == 0 and body in full.output


def _stored_run(tmp_path):
    """A storage root with one run whose `chunk` step committed `chunks` and one reject, as the flow leaves it."""
    from infuse.storage import ArtifactStore, RunManifest

    (tmp_path / "docs").mkdir()
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"input: {tmp_path / 'docs'}\nstorage: {tmp_path / 'runs'}\n")
    store = ArtifactStore(str(tmp_path / "runs"))
    chunks = store.write_table("chunk", "k1", "chunks", [{"chunk_id": "c1", "text": "one"},
                                                         {"chunk_id": "c2", "text": "two"}])
    rejects = store.write_rejects("chunk", "k1", [{"id": "d9", "step": "chunk", "reason": "no_chunks",
                                                    "message": "d9.md: blank", "detail": "{}"}])
    store.commit_step("chunk", "k1", {"chunks": chunks, "rejects": rejects})
    manifest = RunManifest(store, "run-1", {}, str(recipe))
    manifest.record("chunk", {"key": "k1", "state": "Completed", "outputs": {"chunks": chunks.to_dict()},
                              "rejects": rejects.to_dict(), "stats": {"rows_in": 3, "_hidden": 1}})
    return recipe, manifest


def test_show_a_step_or_an_artifact_of_a_stored_run(tmp_path):
    recipe, _ = _stored_run(tmp_path)
    for target in ("chunk", "chunks"):  # the step by name, or the artifact by name
        res = runner.invoke(app, ["show", target, "-r", str(recipe)])
        assert res.exit_code == 0, res.output
        assert "run run-1 (running)  step chunk  state Completed" in res.output
        assert "== chunks: 2 rows" in res.output and "chunk_id: string" in res.output and "c2" in res.output
        assert "== rejects: 1 rows" in res.output and "no_chunks" in res.output and "d9.md: blank" in res.output
        assert 'stats: {"rows_in": 3}' in res.output, "stats starting with _ are not shown"
    res = runner.invoke(app, ["show", "nothing", "-r", str(recipe)])
    assert res.exit_code == 1
    assert "'nothing': no committed output of a step or artifact of that name; steps run: chunk" in res.output


def test_show_without_a_run_or_with_the_output_gone_says_so(tmp_path):
    import shutil

    recipe, manifest = _stored_run(tmp_path)
    shutil.rmtree(tmp_path / "runs" / "artifacts")
    res = runner.invoke(app, ["show", "chunk", "-r", str(recipe)])
    assert res.exit_code == 1 and "no committed output of a step or artifact of that name" in res.output
    shutil.rmtree(tmp_path / "runs" / "manifests")
    res = runner.invoke(app, ["show", "chunk", "-r", str(recipe)])
    assert res.exit_code == 1 and "no run found under this storage root; run the recipe first" in res.output
