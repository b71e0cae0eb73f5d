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


# ---- MoDS with its self-trained seed model ---------------------------------------------------------------------

QA_PLUGIN = str(Path(__file__).with_name("plugin_qa_source.py"))
UPSTREAM = ["parse", "chunk", "clean", "filter", "dedup", "synthesize", "qa_filter"]


def rate_by_question(body):
    """The MoDS quality judge: every answer is fine unless its question is about Glorp."""
    return '{"score": 2}' if "Glorp" in json.dumps(body["messages"]) else '{"score": 8}'


def test_mods_trains_its_seed_model_and_adds_what_it_answers_badly(tmp_path):
    """qa_source -> select (mods) in a real flow, the seed model self-trained: LoRA by the training worker on the
    k-center seed set of a tiny random model, merged, then asked every other question. A random model answers
    nothing, so a question it answers with its reference can only have been learnt from the seed rows: the second
    copy of each seed question is dropped as answered well, the questions of the other facts are added."""
    from faulty_server import FaultyServer
    from tiny_models import FACTS, make_tiny_model

    from infuse.flows.pipeline import infuse_pipeline

    base = make_tiny_model(tmp_path / "base")
    rows = [{"sample_id": f"f{i}-{copy}", "messages": [{"role": "user", "content": q},
                                                       {"role": "assistant", "content": a}],
             "doc_id": f"doc{i}", "strategy": "qa", "lang": "en"}
            for copy in range(2) for i, (q, a) in enumerate(FACTS)]
    rows.append({"sample_id": "glorp", "strategy": "qa", "lang": "en", "doc_id": "doc9",
                 "messages": [{"role": "user", "content": "Is Glorp real?"},
                              {"role": "assistant", "content": "Nobody knows."}]})
    (tmp_path / "qa.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "docs").mkdir()
    with FaultyServer(fail_rate=0.0, content_fn=rate_by_question) as judge:
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(yaml.safe_dump({
            "name": "mods-flow", "input": str(tmp_path / "docs"), "storage": str(tmp_path / "runs"),
            "plugins": [QA_PLUGIN], "model": {"path": str(base)},
            "steps": {**{s: {"enabled": False} for s in UPSTREAM + ["mix"]},
                      "qa_source": {"path": str(tmp_path / "qa.jsonl")},
                      "select": {"enabled": True, "method": "mods", "budget": {"n": 2}, "exempt_strategies": [],
                                 "mods": {"quality": {"kind": "judge", "threshold": 5, "llm": {
                                              "backend": "openai", "base_url": judge.base_url, "model": "judge",
                                              "max_retries": 0, "timeout_s": 30}},
                                          "necessity": {
                                              "threshold": 0.5, "max_tokens": 24,
                                              "llm": {"backend": "transformers", "device": "cpu"},
                                              "train": {"max_steps": 16, "batch_size": 1, "max_length": 128,
                                                        "learning_rate": 1e-2, "lr_scheduler": "constant",
                                                        "warmup_ratio": 0.0, "save_steps": 100},
                                              "lora": {"r": 16, "alpha": 32, "dropout": 0.0}}}}},
        }))
        state = infuse_pipeline(str(recipe), return_state=True)
    assert state.is_completed(), state.message
    res = state.result()["select"]
    scored = {r["sample_id"]: r for r in pq.read_table(res["outputs"]["scored"]["path"]).to_pylist()}
    kept = pq.read_table(res["outputs"]["qa"]["path"]).column("sample_id").to_pylist()
    rejects = {r["id"]: r["reason"] for r in pq.read_table(res["rejects"]["path"]).to_pylist()}

    merged = tmp_path / "runs" / "artifacts" / "select" / res["key"] / "_work" / "necessity-model" / "merged"
    assert (merged / "config.json").is_file() and list(merged.glob("*.safetensors")), "the seed model was merged"
    seed = sorted(sid for sid, r in scored.items() if r["selected_by"] == "seed")
    assert len(seed) == 2 and len({s.split("-")[0] for s in seed}) == 2, "k-center: two different facts"
    from infuse.operators.train.card import read_card

    assert read_card(tmp_path / "runs" / "artifacts" / "select" / res["key"] / "_work" / "necessity-model" / "train"
                     / "final")["data"]["seed_rows"] == 2, "trained on the seed set"

    assert rejects["glorp"] == "judge < threshold" and scored["glorp"]["score_necessity"] is None
    seed_facts = {s.split("-")[0] for s in seed}
    rest = [sid for sid in scored if sid not in seed and sid != "glorp"]
    assert len(rest) == 6 and all(scored[sid]["score_necessity"] is not None for sid in rest)
    twins = [sid for sid in rest if sid.split("-")[0] in seed_facts]
    others = [sid for sid in rest if sid.split("-")[0] not in seed_facts]
    assert len(twins) == 2 and len(others) == 4
    for sid in twins:  # the random base would not answer these: the seed model was trained and used
        assert scored[sid]["score_necessity"] >= 0.5 and rejects[sid] == "answered well by the seed model"
    for sid in others:
        assert scored[sid]["score_necessity"] < 0.5 and scored[sid]["selected_by"] == "necessity"
    assert sorted(kept) == sorted(seed + others), "the seed set and the badly answered rows, a subset of the input"
    assert set(rejects) == set(scored) - set(kept) and all(rejects.values()), "every dropped row has its reason"
