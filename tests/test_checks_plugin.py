"""A qa_filter check added by a plug-in module (tests/plugin_checks.py), turned on by one recipe line, in a real flow."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

pytestmark = pytest.mark.usefixtures("prefect_server")

TESTS = Path(__file__).parent
PLUGINS = [str(TESTS / "plugin_qa_source.py"), str(TESTS / "plugin_checks.py")]


def sample(sid: str, *answers: str) -> dict:
    msgs = []
    for k, a in enumerate(answers):
        msgs += [{"role": "user", "content": f"Question {k} about the {sid} backup schedule?"},
                 {"role": "assistant", "content": a}]
    return {"sample_id": sid, "messages": msgs, "doc_id": "d", "chunk_id": "c", "source_chunk_ids": ["c"],
            "strategy": "facts", "lang": "en", "format": "markdown", "meta": "{}"}


ROWS = [
    sample("nightly", "Backups run every night at two in the morning."),
    sample("todo", "TODO: write the answer about the backup window."),
    sample("weekly", "A full backup runs every Sunday and keeps four weeks."),
    sample("template", "Backups are kept for {{retention}} days by default."),
    sample("dialogue", "Incremental backups run every hour on the hour.", "TODO fill in the restore steps here."),
]


def run(recipe: Path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from infuse.flows.pipeline import infuse_pipeline

    state = infuse_pipeline(str(recipe), return_state=True)
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    return state, {tr.name: tr.state.name for tr in runs}, state.result(raise_on_failure=False)


def write_recipe(tmp_path: Path, qa_filter: dict) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir(exist_ok=True)
    (docs / "backups.md").write_text("# Backups\n\nBackups run nightly at 02:00 and weekly on Sunday.\n")
    (tmp_path / "qa.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS))
    off = {s: {"enabled": False} for s in ("clean", "filter", "dedup", "synthesize", "mix")}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "checks", "input": str(docs), "storage": str(tmp_path / "runs"), "plugins": PLUGINS,
        "steps": {**off, "qa_source": {"path": str(tmp_path / "qa.jsonl")}, "qa_filter": qa_filter}}))
    return recipe


def test_plugin_check_runs_when_the_recipe_names_it(tmp_path):
    state, states, res = run(write_recipe(tmp_path, {"extra_checks": ["placeholder"]}))
    assert state.is_completed(), state.message
    assert states == {"parse": "Completed", "chunk": "Completed", "qa_source": "Completed", "qa_filter": "Completed"}
    out = res["qa_filter"]
    rejects = pq.read_table(out["rejects"]["path"]).to_pylist()
    assert [(r["id"], r["reason"]) for r in rejects] == [
        ("todo", "placeholder_answer"), ("template", "placeholder_answer"),
        ("dialogue#turn1", "placeholder_answer_turn")]
    assert rejects[1]["message"] == "answer holds template text '{{'"
    kept = pq.read_table(out["outputs"]["qa"]["path"]).to_pylist()
    assert [r["sample_id"] for r in kept] == ["nightly", "weekly", "dialogue"]
    assert [m["role"] for m in kept[2]["messages"]] == ["user", "assistant"], "the dialogue keeps its first turn"
    assert out["stats"]["checks"]["placeholder"] == {"in": 5, "dropped": 2, "cut": 1}
    assert list(out["stats"]["checks"]) == ["form", "language", "dedup", "length_outlier", "grounding", "citation",
                                            "placeholder"]

    # the same plug-in loaded, the check not named: qa_filter runs again and keeps every sample
    state, states, res = run(write_recipe(tmp_path, {}))
    assert states == {"parse": "Cached", "chunk": "Cached", "qa_source": "Cached", "qa_filter": "Completed"}
    assert res["qa_filter"]["outputs"]["qa"]["rows"] == len(ROWS)
    assert "placeholder" not in res["qa_filter"]["stats"]["checks"]
