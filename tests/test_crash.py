"""Real kills of `infuse run`: SIGKILL mid-clean, mid-synthesize and mid-model-write, and SIGTERM.

Each run is the installed CLI in a subprocess, from a folder outside the
repo, reporting to the tests' Prefect server. After a kill the next run must
complete, bring upstream steps back Cached, not regenerate committed shards
(the LLM server counts requests), and end byte-identical to a run that was
never killed.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from cli_helpers import infuse, last_states, manifests, outputs_sha, spawn, wait_for, write_recipe
from faulty_server import FaultyServer

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]

PLUGIN = str(Path(__file__).with_name("plugin_slow_model.py"))
PARAGRAPH = ("LotusDB keeps its write-ahead log in segments of {n} MiB. A checkpoint every {m} seconds lets "
             "recovery replay only the tail of the log. 检查点每 {m} 秒写一次，恢复时只需重放日志尾部。")


def corpus(root: Path, n_files: int = 60) -> Path:
    docs = root / "docs"
    docs.mkdir()
    for i in range(n_files):
        body = "\n\n".join(f"## Part {j}\n\n" + PARAGRAPH.format(n=i * 7 + j, m=j + i) * 3 for j in range(6))
        (docs / f"note_{i:03d}.md").write_text(f"# Note {i}\n\n{body}\n", encoding="utf-8")
    return docs


def kill(proc) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_sigkill_mid_clean_then_rerun_is_cached_upstream_and_identical(tmp_path):
    docs = corpus(tmp_path)
    steps = {"synthesize": {"max_llm_items": 0, "paraphrase": {"enabled": False}},
             "mix": {"enabled": False}}  # no LLM: qa is empty, and mix refuses to mix nothing
    ref = write_recipe(tmp_path / "ref.yaml", docs, tmp_path / "ref", steps=steps)
    recipe = write_recipe(tmp_path / "r.yaml", docs, tmp_path / "runs", steps=steps, runner={"shard_rows": 20})
    done = infuse(["run", str(ref)], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr

    proc = spawn(["run", str(recipe)], cwd=tmp_path)
    clean_dir = tmp_path / "runs" / "artifacts" / "clean"
    wait_for(lambda: any(clean_dir.glob("*/chunks.parquet.tmp-*")), 300, "clean to start writing", proc)
    kill(proc)
    assert last_states(tmp_path / "runs") == {"parse": "Completed", "chunk": "Completed"}, \
        "the manifest holds what committed before the kill"
    assert not any(clean_dir.glob("*/_step.json")), "clean was killed before it committed"

    again = infuse(["run", str(recipe)], cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    states = last_states(tmp_path / "runs")
    assert states["parse"] == states["chunk"] == "Cached" and states["clean"] == "Completed"
    assert outputs_sha(tmp_path / "runs") == outputs_sha(tmp_path / "ref"), "byte-identical to an unkilled run"
    assert not any(clean_dir.glob("*/*.tmp-*")), "the killed try's temp file is gone"
    show = infuse(["show", "clean", "-r", str(recipe)], cwd=tmp_path)
    assert show.returncode == 0 and "Traceback" not in show.stdout + show.stderr


def _synth_recipe(path: Path, docs: Path, storage: Path, base_url: str, **synth) -> Path:
    return write_recipe(path, docs, storage, steps={"synthesize": {
        "llm": {"backend": "openai", "base_url": base_url, "model": "slow", "max_retries": 0, "timeout_s": 10,
                "concurrency": 1},
        "by_format": {"default": ["qa"]}, "paraphrase": {"enabled": False}, "max_llm_items": 8,
        "shard_size": 4, "commit_every": 2, **synth}})


def _qa_content(body: dict) -> str:
    user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
    return json.dumps({"qa": [{"question": "What does the passage say?", "answer": user[-200:]}]}, ensure_ascii=False)


def _committed_calls(storage: Path) -> int:
    """LLM calls of the items in committed shard units (what a resume must not repeat)."""
    import pyarrow.parquet as pq

    calls = 0
    for unit in (storage / "artifacts" / "synthesize").glob("*/*.unit.json"):
        status = json.loads(unit.read_text())["tables"]["status"]
        calls += sum(pq.read_table(unit.parent / Path(status["path"]).name).column("calls").to_pylist())
    return calls


def test_sigkill_mid_synthesize_resumes_without_regenerating_committed_items(tmp_path, examples_copy):
    from prefect.client.orchestration import get_client

    with FaultyServer(fail_rate=0.0, seed=3, latency_s=0.4, content_fn=_qa_content) as server:
        ref = _synth_recipe(tmp_path / "ref.yaml", examples_copy, tmp_path / "ref", server.base_url)
        assert infuse(["run", str(ref)], cwd=tmp_path).returncode == 0
        total = len(server.log)
        assert total >= 8

        recipe = _synth_recipe(tmp_path / "r.yaml", examples_copy, tmp_path / "runs", server.base_url)
        server.log.clear()
        proc = spawn(["run", str(recipe)], cwd=tmp_path)
        wait_for(lambda: len(server.log) >= 5, 300, "5 LLM requests", proc)
        kill(proc)
        killed_run = manifests(tmp_path / "runs")[-1]["run_id"]
        committed = _committed_calls(tmp_path / "runs")
        assert 0 < committed < total, "some finished items were committed before the kill, not all"

        server.log.clear()
        again = infuse(["run", str(recipe)], cwd=tmp_path)
        assert again.returncode == 0, again.stdout + again.stderr
        assert len(server.log) == total - committed, "committed items were not asked for again"
    states = last_states(tmp_path / "runs")
    assert {s: states[s] for s in ("parse", "chunk", "clean", "filter", "dedup")} == dict.fromkeys(
        ("parse", "chunk", "clean", "filter", "dedup"), "Cached")
    assert outputs_sha(tmp_path / "runs") == outputs_sha(tmp_path / "ref")
    with get_client(sync_client=True) as client:  # the killed run no longer shows as running
        assert client.read_flow_run(killed_run).state.type.value == "CRASHED"


def test_sigterm_stops_within_seconds_and_saves_a_partial_manifest(tmp_path, examples_copy):
    with FaultyServer(fail_rate=0.0, seed=3, latency_s=1.0, content_fn=_qa_content) as server:
        recipe = _synth_recipe(tmp_path / "r.yaml", examples_copy, tmp_path / "runs", server.base_url,
                               commit_every=1)
        proc = spawn(["run", str(recipe)], cwd=tmp_path)
        wait_for(lambda: len(server.log) >= 3, 300, "3 LLM requests", proc)
        t0 = time.time()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        assert time.time() - t0 < 20, "SIGTERM took effect within seconds, not at the end of the step"
        doc = manifests(tmp_path / "runs")[-1]
        assert doc["status"] == "interrupted"
        assert {s for s, e in doc["steps"].items() if e["state"] == "Completed"} >= {"parse", "dedup"}
        assert _committed_calls(tmp_path / "runs") >= 1, "items finished before the stop are committed"
        served = len(server.log)
        again = infuse(["run", str(recipe)], cwd=tmp_path)
        assert again.returncode == 0, again.stdout + again.stderr
        assert last_states(tmp_path / "runs")["synthesize"] == "Completed"
        assert len(server.log) - served < 8, "the resumed run asked only for what was not committed"


def test_sigkill_mid_model_write_is_never_trusted(tmp_path, examples_copy):
    recipe = write_recipe(tmp_path / "r.yaml", examples_copy, tmp_path / "runs", plugins=[PLUGIN],
                          steps={"synthesize": {"enabled": False}, "qa_filter": {"enabled": False},
                                 "clean": {"enabled": False}, "filter": {"enabled": False},
                                 "dedup": {"enabled": False}, "mix": {"enabled": False}})
    proc = spawn(["run", str(recipe)], cwd=tmp_path)
    model_dir = tmp_path / "runs" / "artifacts" / "slow_model"
    wait_for(lambda: any(p.name.startswith(".model.tmp-") and len(list(p.iterdir())) > 3
                         for p in model_dir.glob("*/.model.tmp-*")), 300, "the model to be half written", proc)
    kill(proc)
    assert not any(model_dir.glob("*/model.meta.json")), "a half-written model has no meta"
    again = infuse(["run", str(recipe)], cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert last_states(tmp_path / "runs")["slow_model"] == "Completed", "recomputed, not trusted"
    (key_dir,) = [p for p in model_dir.iterdir() if p.is_dir()]
    assert not list(key_dir.glob(".model.tmp-*")), "the killed try's directory is removed"
    meta = json.loads((key_dir / "model.meta.json").read_text())
    assert len(meta["files"]) == 41 and meta["kind"] == "model"
    shutil.rmtree(key_dir / "model")
    rerun = infuse(["run", str(recipe)], cwd=tmp_path)
    assert rerun.returncode == 0 and last_states(tmp_path / "runs")["slow_model"] == "Completed", \
        "a deleted model is rebuilt"
