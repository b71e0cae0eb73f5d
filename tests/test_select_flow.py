"""The select step in the flow: real files, a real Prefect server, a tiny scorer model built from a config."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from tiny_lm import tiny_lm

pytestmark = pytest.mark.usefixtures("prefect_server")


def recipe_for(tmp_path: Path, docs: Path, scorer: str) -> Path:
    data = {
        "name": "select-flow",
        "input": str(docs),
        "storage": str(tmp_path / "runs"),
        "steps": {
            "synthesize": {"max_llm_items": 0, "paraphrase": {"enabled": False}},  # templates only: no LLM
            "select": {"enabled": True, "method": "ifd", "budget": {"percent": 50},
                       "exempt_strategies": ["identity"], "scorer": {"path": scorer}},
        },
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_select_step_in_the_flow(tmp_path, examples_copy):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from infuse.flows.pipeline import infuse_pipeline

    scorer = tiny_lm(tmp_path / "scorer", "llama")
    state = infuse_pipeline(str(recipe_for(tmp_path, examples_copy, str(scorer))), return_state=True)
    res = state.result()["select"]
    qa_in = pq.read_table(state.result()["qa_filter"]["outputs"]["qa"]["path"]).to_pylist()
    scored = pq.read_table(res["outputs"]["scored"]["path"]).to_pylist()
    kept = pq.read_table(res["outputs"]["qa"]["path"])
    rejects = pq.read_table(res["rejects"]["path"]).to_pylist()

    assert [r["sample_id"] for r in scored] == [r["sample_id"] for r in qa_in], "every input row is scored, in order"
    assert kept.schema.equals(pq.read_table(state.result()["qa_filter"]["outputs"]["qa"]["path"]).schema)
    assert kept.column("sample_id").to_pylist() == [r["sample_id"] for r in scored if r["selected"]]
    assert {r["id"] for r in rejects} == {r["sample_id"] for r in scored if not r["selected"]}
    assert {r["reason"] for r in rejects} <= {"ifd>=1", "below top 50% by ifd"} and rejects
    for r in scored:
        if r["strategy"] == "identity":
            assert r["exempt"] and r["selected"] and r["score_ifd"] is None and r["selected_by"] == "exempt"
        else:
            assert r["score_ifd"] == pytest.approx(r["score_s_a_given_q"] / r["score_s_a"])
            assert r["selected"] == (r["reason"] is None)
            if r["selected"]:
                assert r["score_ifd"] < 1.0
    valid = sorted((r["score_ifd"] for r in scored if r["score_ifd"] is not None and r["score_ifd"] < 1), reverse=True)
    n_kept = sum(r["selected"] and not r["exempt"] for r in scored)
    assert n_kept == -(-len(valid) // 2), "top 50% of the rows under the IFD cut, rounded up"

    report_dir = Path(res["report"]["path"])
    assert (report_dir / "ifd_histogram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stats = json.loads((report_dir / "stats.json").read_text())
    assert stats["ifd"]["scored"] == len([r for r in scored if r["score_ifd"] is not None])
    assert sum(v["rows"] for v in stats["by_source"].values()) == len(scored)

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    arts = {a.key: a for a in arts if a.key}
    table = json.loads(arts["select-by-source"].data)
    assert sum(r["kept"] for r in table) == kept.num_rows and any(r["source"].endswith(".md") for r in table)
    assert "data:image/png;base64," in arts["select-summary"].data
