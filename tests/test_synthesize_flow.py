"""Synthesis inside the flow against a real HTTP server that fails 30% of calls.

Nothing is lost: every work item ends done or failed with its error, failed
items are rejects with their raw output kept, a re-run resumes finished shards,
and --retry-failed re-runs only the failed items.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from faulty_server import FaultyServer

pytestmark = pytest.mark.usefixtures("prefect_server")


def qa_content(body: dict) -> str:
    """A well-formed QA_PAIRS answer that copies its chunk, so it is grounded."""
    user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
    return json.dumps({"qa": [{"question": "What does the passage explain?", "answer": user[-300:]}]},
                      ensure_ascii=False)


def recipe_for(tmp_path: Path, docs: Path, base_url: str) -> Path:
    data = {
        "name": "synth-fault",
        "input": str(docs),
        "storage": str(tmp_path / "runs"),
        "steps": {
            "synthesize": {
                # a generous timeout: a slow answer on a busy machine is no timeout; an injected one sleeps 60 s
                "llm": {"backend": "openai", "base_url": base_url, "model": "faulty", "max_retries": 0,
                        "timeout_s": 3.0, "concurrency": 8},
                "by_format": {"default": ["qa"]},
                "paraphrase": {"enabled": False},
                "shard_size": 8,
            },
        },
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def read(ref: dict):
    return pq.read_table(ref["path"]).to_pylist()


def nothing_lost(res: dict) -> tuple[list[dict], list[dict]]:
    """Every work item has a final status, each failure is a reject with its error kind, the samples are the
    done items'; returns (the failed statuses, the `no_work_item` rejects)."""
    status, rejects = read(res["outputs"]["status"]), read(res["rejects"])
    assert res["stats"]["items"] > 10
    assert len(status) == res["stats"]["items"], "every work item has a final status"
    by_outcome = {"done": [], "failed": []}
    for s in status:
        by_outcome[s["status"]].append(s)
    failed, done = by_outcome["failed"], by_outcome["done"]
    assert failed and done
    skipped = [r for r in rejects if r["reason"] == "no_work_item"]  # e.g. chunks under min_chunk_chars
    failures = [r for r in rejects if r["reason"] != "no_work_item"]
    assert {r["id"] for r in failures} == {s["item_id"] for s in failed}, "each failure is a reject"
    assert all(r["reason"].startswith(("llm_", "malformed_json", "schema_invalid")) for r in failures)
    assert len(read(res["outputs"]["qa"])) == sum(s["n_samples"] for s in done)
    return failed, skipped


def test_faulty_endpoint_loses_nothing_and_retry_failed_recovers(tmp_path, examples_copy):
    from infuse.flows.pipeline import run_recipe

    with FaultyServer(fail_rate=0.3, seed=7, timeout_sleep_s=60.0, content_fn=qa_content) as server:
        recipe = recipe_for(tmp_path, examples_copy, server.base_url)
        res = run_recipe(str(recipe))["synthesize"]
        items = res["stats"]["items"]
        failed, skipped = nothing_lost(res)

        # a plain re-run: cached, no call made
        calls = len(server.log)
        run_recipe(str(recipe))
        assert len(server.log) == calls

        # the endpoint recovers; --retry-failed re-runs only the failed items
        server.fail_rate = 0.0
        res2 = run_recipe(str(recipe), retry_failed=True)["synthesize"]
        new_calls = len(server.log) - calls
        assert new_calls == len(failed), "one call per failed item, none for finished ones"
        assert res2["stats"]["items_retried"] == len(failed)
        status2 = read(res2["outputs"]["status"])
        assert all(s["status"] == "done" for s in status2) and len(status2) == items
        assert read(res2["rejects"]) == skipped, "only the chunks no strategy takes remain"


def test_killed_run_resumes_finished_shards(tmp_path, examples_copy):
    """Shards committed before a crash are reused; only the rest are generated."""
    from infuse.flows.pipeline import run_recipe
    from infuse.storage import ArtifactStore

    with FaultyServer(fail_rate=0.0, seed=1, content_fn=qa_content) as server:
        recipe = recipe_for(tmp_path, examples_copy, server.base_url)
        res = run_recipe(str(recipe))["synthesize"]
        total_calls = len(server.log)
        store = ArtifactStore(str(tmp_path / "runs"))
        key = res["key"]
        # simulate a kill after the first shard: drop the merged outputs and every later shard
        for p in (tmp_path / "runs" / "artifacts" / "synthesize" / key).iterdir():
            if not p.name.startswith("shard-00000"):
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        # and the item memo, which would otherwise hold every item (tests/test_synth_memo.py covers it)
        shutil.rmtree(tmp_path / "runs" / "artifacts" / "cache-synthesize")
        shard0 = store.load_unit("synthesize", key, "shard-00000")["status"]
        shard0_calls = sum(store.read(shard0).column("calls").to_pylist())
        assert shard0_calls > 0
        res2 = run_recipe(str(recipe))["synthesize"]
        assert res2["stats"]["shards_resumed"] == 1
        assert len(server.log) - total_calls == total_calls - shard0_calls, "the finished shard was not regenerated"
        assert res2["outputs"]["qa"]["sha256"] == res["outputs"]["qa"]["sha256"]
