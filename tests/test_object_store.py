"""`storage: s3://bucket/prefix` end to end, against moto's standalone S3 server on 127.0.0.1.

The demo's data steps and a model step run through the installed CLI with an S3 root: tables, a model
directory, units, manifests and Prefect's result records all live in the bucket. A run killed
mid-write (SIGKILL) is re-run, and its outputs are byte-identical to a run on local disk.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from cli_helpers import infuse, spawn, wait_for, write_recipe

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]

MOTO = str(Path(sys.executable).with_name("moto_server"))
PLUGIN = str(Path(__file__).with_name("plugin_slow_model.py"))
# filter is left out for time (its data-juicer models load for most of a minute on 2 busy cores); it
# writes tables the same way the others do
STEPS = {"filter": {"enabled": False}, "synthesize": {"enabled": False}, "qa_filter": {"enabled": False},
         "slow_model": {"files": 40, "delay_s": 0.05}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3():
    """A local S3-compatible server (moto), and the environment a user sets to reach it."""
    port = _free_port()
    proc = subprocess.Popen([MOTO, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": endpoint}
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2)
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("moto_server did not start")
            time.sleep(0.2)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # this process reads the bucket too, as a user's script would
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=endpoint, use_listings_cache=False)
    fs.mkdir("infuse-test")
    try:
        yield env, fs
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _manifests(fs, prefix: str) -> list[dict]:
    docs = [json.loads(fs.cat(p)) for p in fs.glob(f"{prefix}/manifests/*.json") if not p.endswith("latest.json")]
    return sorted(docs, key=lambda d: d["started_at"])


def _sha_of(fs, ref: dict) -> str:
    """The sha256 of the bytes really in the bucket (a table), or of every file of a directory."""
    if ref["kind"] == "table":
        return hashlib.sha256(fs.cat(ref["path"])).hexdigest()
    files = {p[len(ref["path"]) + 1:]: hashlib.sha256(fs.cat(p)).hexdigest() for p in fs.find(ref["path"])}
    return hashlib.sha256(json.dumps([[k, v] for k, v in sorted(files.items())]).encode()).hexdigest()


def _local_sha(ref: dict) -> str:
    path = Path(ref["path"])
    if ref["kind"] == "table":
        return hashlib.sha256(path.read_bytes()).hexdigest()
    files = {p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in path.rglob("*") if p.is_file()}
    return hashlib.sha256(json.dumps([[k, v] for k, v in sorted(files.items())]).encode()).hexdigest()


def _outputs(doc: dict) -> dict[str, dict]:
    return {f"{s}.{n}": r for s, e in doc["steps"].items() for n, r in {**e.get("outputs", {}),
                                                                           "rejects": e["rejects"]}.items()}


def test_s3_root_killed_mid_write_then_rerun_matches_local_disk(tmp_path, s3, examples_copy):
    env, fs = s3
    local = write_recipe(tmp_path / "local.yaml", examples_copy, tmp_path / "local", plugins=[PLUGIN], steps=STEPS)
    remote = write_recipe(tmp_path / "s3.yaml", examples_copy, "s3://infuse-test/runs/demo", plugins=[PLUGIN],
                          steps=STEPS)
    res = infuse(["run", str(local)], cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

    # SIGKILL while the model directory is being written (a remote root stages it locally, then uploads)
    staging = tmp_path / "tmp"
    staging.mkdir()
    proc = spawn(["run", str(remote)], cwd=tmp_path, TMPDIR=str(staging), **env)
    wait_for(lambda: any(len(list(d.iterdir())) > 3 for d in staging.glob("infuse-model-*")), 300,
             "the model to be half written", proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    prefix = "infuse-test/runs/demo"
    killed = _manifests(fs, prefix)[-1]
    assert killed["status"] == "running" and "slow_model" not in killed["steps"], "the manifest is in the bucket"
    assert {"parse", "chunk"} <= set(killed["steps"])
    assert not fs.glob(f"{prefix}/artifacts/slow_model/*/model.meta.json"), "a half-written model has no meta"

    res = infuse(["run", str(remote)], cwd=tmp_path, **env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "s3://infuse-test/runs/demo/artifacts/dedup/" in res.stdout
    doc = _manifests(fs, prefix)[-1]
    states = {s: e["state"] for s, e in doc["steps"].items()}
    assert states["parse"] == states["chunk"] == "Cached", "Prefect's cache records on S3 bring them back"
    assert states["slow_model"] == "Completed", "the killed model write was not trusted"
    assert fs.find(f"{prefix}/_prefect"), "Prefect results are stored under the root"

    ref_doc = json.loads((tmp_path / "local" / "manifests" / "latest.json").read_text())
    ref_doc = json.loads((tmp_path / "local" / "manifests" / f"{ref_doc['run_id']}.json").read_text())
    got, want = _outputs(doc), _outputs(ref_doc)
    assert set(got) == set(want) and len(got) >= 10
    for name, ref in got.items():
        assert ref["sha256"] == want[name]["sha256"], name
        assert _sha_of(fs, ref) == _local_sha(want[name]) == ref["sha256"], f"{name}: the bytes in the bucket"
    assert not fs.glob(f"{prefix}/artifacts/*/*/*.tmp-*"), "no temp object is left"

    show = infuse(["show", "slow_model", "-r", str(remote)], cwd=tmp_path, **env)  # the model read back
    assert show.returncode == 0 and "card.json" in show.stdout, show.stdout[-2000:] + show.stderr[-2000:]


def test_store_on_s3_units_dirs_and_invalidation(s3, tmp_path, monkeypatch):
    """The store's commit points on an object store, where a rename is a copy and a delete."""
    import pyarrow as pa

    from infuse.storage import ArtifactStore

    _, fs = s3
    monkeypatch.setenv("INFUSE_CACHE", str(tmp_path / "cache"))
    store = ArtifactStore("s3://infuse-test/unit")
    schema = pa.schema([("id", pa.string())])
    first = store.commit_unit("s", "k", "shard-0", {"qa": pa.table({"id": ["a"]}, schema=schema)})
    again = store.commit_unit("s", "k", "shard-0", {"qa": pa.table({"id": ["a", "b"]}, schema=schema)})
    assert store.load_unit("s", "k", "shard-0")["qa"].rows == 2
    assert not fs.exists(first["qa"].path) and fs.exists(again["qa"].path), "the replaced version is removed"

    with store.dir_writer("s", "k", "model") as out:
        (out.path / "sub").mkdir()
        (out.path / "sub" / "w.bin").write_bytes(b"w" * 100)
        (out.path / "config.json").write_text("{}")
    ref = store.committed("s", "k", "model")
    assert ref == out.ref and ref.rows == 2
    copy = store.local_dir(ref)
    assert sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*")) == ["config.json", "sub", "sub/w.bin"]
    fs.rm(f"{ref.path}/sub/w.bin")
    assert store.committed("s", "k", "model") is None, "a directory missing a file is not committed"

    w = store.writer("s", "k", "t", schema)  # a write that never commits, as a killed process leaves it
    w.write(pa.table({"id": ["x"]}, schema=schema))
    w._writer.close()
    w._file.close()
    assert fs.exists(w.tmp) and store.committed("s", "k", "t") is None
    store.invalidate("s", "k")
    assert not fs.exists(w.tmp), "a killed try's temp object goes when the step starts again"
    assert store.load_unit("s", "k", "shard-0") is not None, "committed units stay for a resume"
    store.invalidate("s", "k", fresh=True)
    assert store.load_unit("s", "k", "shard-0") is None, "--refresh drops them"


def test_stop_marker_on_s3_is_seen_at_once(s3):
    """A cluster's workers poll the marker: a bucket listing cached before it was written must not hide it."""
    from infuse.storage import StopMarker

    _, fs = s3
    marker = StopMarker("s3://infuse-test/stop", "run-1")
    assert not marker.requested()
    fs.pipe("infuse-test/stop/runstate/run-1/stop", b"{}")  # another process (the flow) writes it
    assert marker.requested()
