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
from cli_helpers import (infuse, last_states, manifests, outputs_sha, spawn, training_processes, wait_for,
                         write_recipe)
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


# ---- SIGKILL mid-training ----------------------------------------------------------------------------------------

TRAIN_STEPS = str(Path(__file__).with_name("train_steps.py"))
SFT_STEPS, SAVE_EVERY = 24, 4


def _sft_recipe(path: Path, root: Path, tiny: Path) -> Path:
    """The rows plug-in (8 made-up facts) -> sft, LoRA with dropout (so the resume needs the RNG state too) on a
    tiny model for 24 steps of 1 row (3 passes, each in its own seeded order), a checkpoint every 4 steps, a
    linear schedule with warmup."""
    from tiny_models import fact_rows

    rows = root.parent / "rows.jsonl"
    if not rows.exists():
        rows.write_text("\n".join(json.dumps(r) for r in fact_rows(2)), encoding="utf-8")
    (root.parent / "docs").mkdir(exist_ok=True)
    off = {s: {"enabled": False} for s in ("parse", "chunk", "clean", "filter", "dedup", "synthesize", "qa_filter")}
    return write_recipe(path, root.parent / "docs", root, plugins=[TRAIN_STEPS], model={"path": str(tiny)},
                        steps={**off, "rows": {"path": str(rows)},
                               "sft": {"enabled": True, "method": "lora", "max_steps": SFT_STEPS, "batch_size": 1,
                                       "max_length": 64, "learning_rate": 1e-2, "lr_scheduler": "linear",
                                       "warmup_ratio": 0.1, "save_steps": SAVE_EVERY,
                                       "lora": {"r": 8, "alpha": 16, "dropout": 0.1}}})


def _model_files(model_dir: Path) -> dict[str, str]:
    """sha256 of every file of a model directory. card.json is compared without `created_at` and `metrics`
    (wall-clock time, tokens/s, peak memory and the tokens this process trained: facts of the run, not of the
    model), everything else byte for byte."""
    import hashlib

    out = {}
    for p in sorted(model_dir.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if p.name == "card.json":
                card = json.loads(data)
                data = json.dumps({k: v for k, v in card.items() if k not in ("created_at", "metrics")},
                                  sort_keys=True).encode()
            out[str(p.relative_to(model_dir))] = hashlib.sha256(data).hexdigest()
    return out


def test_sigkill_mid_training_resumes_from_the_checkpoint_into_the_same_bytes(tmp_path):
    """A real `infuse run` is SIGKILLed mid-sft (the CLI's process group; the training runs in its own
    session and must go down with it); the re-run resumes from the newest checkpoint and ends with the
    very bytes of a run that was never killed."""
    from tiny_models import make_tiny_model

    tiny = make_tiny_model(tmp_path / "tiny")
    ref = _sft_recipe(tmp_path / "ref.yaml", tmp_path / "ref", tiny)
    done = infuse(["run", str(ref)], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    ref_sft = manifests(tmp_path / "ref")[-1]["steps"]["sft"]
    assert ref_sft["state"] == "Completed" and ref_sft["stats"]["resumed_from"] == 0

    root = tmp_path / "runs"
    recipe = _sft_recipe(tmp_path / "r.yaml", root, tiny)
    proc = spawn(["run", str(recipe)], cwd=tmp_path)
    sft_dir = root / "artifacts" / "sft"
    wait_for(lambda: any(sft_dir.glob("*/_work/checkpoints/checkpoint-*/trainer_state.json")), 300,
             "the first complete checkpoint", proc)
    training = training_processes(root)
    assert training, "the training processes run when the checkpoint appears"
    kill(proc)
    wait_for(lambda: not training_processes(root), 60, "the training processes to end with the CLI")
    (work,) = sft_dir.glob("*/_work")
    assert not (work / "final").exists() and not (work / "result.json").exists(), "killed before training ended"
    saved = sorted(int(p.parent.name.split("-")[1]) for p in work.glob("checkpoints/checkpoint-*/trainer_state.json"))
    assert saved and saved[-1] < SFT_STEPS
    assert not any(sft_dir.glob("*/model")), "no model was published"

    again = infuse(["run", str(recipe)], cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    sft = manifests(root)[-1]["steps"]["sft"]
    assert sft["state"] == "Completed" and sft["key"] == work.parent.name, "the same key, so the same work dir"
    assert sft["stats"]["resumed_from"] == saved[-1] > 0, "resumed from the newest checkpoint, not from step 0"
    report = (Path(sft["report"]["path"]) / "report.md").read_text(encoding="utf-8")
    assert f"(resumed at step {sft['stats']['resumed_from']})" in report, "the step's report says it resumed"
    ours, theirs = _model_files(Path(sft["outputs"]["model"]["path"])), _model_files(
        Path(ref_sft["outputs"]["model"]["path"]))
    assert "adapter_model.safetensors" in ours and "card.json" in ours
    assert ours == theirs, "the resumed model is byte-identical to the unkilled run's"


def test_a_checkpoint_killed_while_writing_its_trainer_state_is_not_resumed_from(tmp_path):
    """The Trainer writes trainer_state.json last and not atomically: a kill mid-write leaves a checkpoint
    whose state does not parse, and the resume takes the newest one before it."""
    from infuse.operators.train.session import last_checkpoint

    for step, state in ((4, '{"global_step": 4}'), (8, '{"global_step": 8, "log_hist'), (12, None)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        if state is not None:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")
    (tmp_path / "checkpoint-12" / "trainer_state.json").write_text('{"global_step": 12}')
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-12")
