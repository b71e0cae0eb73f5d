"""`infuse run` flags through the installed CLI: --retry-failed, --refresh, --only, --from."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from cli_helpers import infuse, last_states, manifests, write_recipe
from faulty_server import FaultyServer

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]
DATA = ("parse", "chunk", "clean", "filter", "dedup")


def _content(body: dict) -> str:
    user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
    return json.dumps({"qa": [{"question": "What does the passage say?", "answer": user[-200:]}]})


def _status(storage) -> list[dict]:
    ref = manifests(storage)[-1]["steps"]["synthesize"]["outputs"]["status"]
    return pq.read_table(ref["path"]).to_pylist()


def test_cli_flags(tmp_path, examples_copy):
    storage = tmp_path / "runs"
    with FaultyServer(fail_rate=0.5, seed=11, timeout_sleep_s=30.0, content_fn=_content) as server:
        recipe = write_recipe(tmp_path / "r.yaml", examples_copy, storage, steps={"synthesize": {
            "llm": {"backend": "openai", "base_url": server.base_url, "model": "m", "max_retries": 0,
                    "timeout_s": 3.0, "concurrency": 4},
            "by_format": {"default": ["qa"]}, "paraphrase": {"enabled": False}, "max_llm_items": 10,
            "shard_size": 4}})
        assert infuse(["run", str(recipe)], cwd=tmp_path).returncode == 0
        failed = {s["item_id"] for s in _status(storage) if s["status"] == "failed"}
        done = {s["item_id"] for s in _status(storage) if s["status"] == "done"}
        assert failed and done, "the 50% failing server leaves some items failed"

        # --retry-failed: only the failed items are asked again; the done ones stay as they were
        server.fail_rate = 0.0
        n0 = len(server.log)
        res = infuse(["run", str(recipe), "--retry-failed"], cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        assert 0 < len(server.log) - n0 <= 2 * len(failed)  # at most two attempts (malformed → one retry)
        after = {s["item_id"]: s["status"] for s in _status(storage)}
        assert all(after[i] == "done" for i in failed | done)
        states = last_states(storage)
        assert states["synthesize"] == "Completed" and all(states[s] == "Cached" for s in DATA)

        # --refresh synthesize: regenerates everything (no shard is reused), upstream stays Cached
        n1 = len(server.log)
        assert infuse(["run", str(recipe), "--refresh", "synthesize"], cwd=tmp_path).returncode == 0
        assert len(server.log) - n1 >= len(failed | done)
        assert manifests(storage)[-1]["steps"]["synthesize"]["stats"]["shards_resumed"] == 0

        # --only dedup: just that step; --from qa_filter: that step, the rest reused
        res = infuse(["run", str(recipe), "--only", "dedup"], cwd=tmp_path)
        assert res.returncode == 0 and last_states(storage) == {**dict.fromkeys(DATA[:4], "Reused"), "dedup": "Cached"}
        res = infuse(["run", str(recipe), "--from", "qa_filter"], cwd=tmp_path)
        assert res.returncode == 0
        states = last_states(storage)
        assert states["qa_filter"] == "Cached" and all(states[s] == "Reused" for s in (*DATA, "synthesize"))

        # a step name that does not exist is a clear error, not a traceback
        res = infuse(["run", str(recipe), "--from", "chunks"], cwd=tmp_path)
        assert res.returncode == 2 and "unknown or disabled step 'chunks'" in res.stderr
