"""The artifact store: atomic commits, content hashes, manifests, fsspec roots."""
from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pytest

from infuse.storage import ArtifactStore, RunManifest

SCHEMA = pa.schema([("id", pa.string()), ("n", pa.int64())])


def test_write_commit_and_read_back(tmp_path):
    store = ArtifactStore(str(tmp_path))
    ref = store.write_table("s", "k1", "out", [{"id": "a", "n": 1}, {"id": "b", "n": 2}], SCHEMA)
    assert ref.rows == 2
    assert ref.sha256 == hashlib.sha256(open(ref.path, "rb").read()).hexdigest()
    assert store.verify(ref)
    assert store.read(ref).to_pylist() == [{"id": "a", "n": 1}, {"id": "b", "n": 2}]
    assert store.committed("s", "k1", "out") == ref
    assert "id: string" in ref.schema


def test_streaming_writer_many_batches(tmp_path):
    store = ArtifactStore(str(tmp_path))
    with store.writer("s", "k", "big", SCHEMA, row_group_size=100) as w:
        for i in range(10):
            w.write([{"id": str(j), "n": j} for j in range(i * 100, (i + 1) * 100)])
        ref = w.commit()
    assert ref.rows == 1000
    assert sum(b.num_rows for b in store.iter_batches(ref, batch_size=64)) == 1000


def test_killed_write_is_never_read_as_complete(tmp_path):
    store = ArtifactStore(str(tmp_path))
    with pytest.raises(RuntimeError):
        with store.writer("s", "k", "out", SCHEMA) as w:
            w.write([{"id": "a", "n": 1}])
            raise RuntimeError("killed mid-step")
    assert store.committed("s", "k", "out") is None
    assert not list(tmp_path.rglob("*.parquet*")), "the temp file is cleaned up on abort"
    # a process killed before commit leaves only a temp file: still not complete
    w = store.writer("s", "k", "out", SCHEMA)
    w.write([{"id": "a", "n": 1}])
    assert store.committed("s", "k", "out") is None
    assert not (tmp_path / "artifacts/s/k/out.parquet").exists()


def test_deleted_data_file_means_not_committed(tmp_path):
    store = ArtifactStore(str(tmp_path))
    ref = store.write_table("s", "k", "out", [{"id": "a", "n": 1}], SCHEMA)
    (tmp_path / "artifacts/s/k/out.parquet").unlink()
    assert store.committed("s", "k", "out") is None
    assert not store.exists(ref)


def test_same_content_same_hash(tmp_path):
    store = ArtifactStore(str(tmp_path))
    a = store.write_table("s", "k1", "o", [{"id": "a", "n": 1}], SCHEMA)
    b = store.write_table("s", "k2", "o", [{"id": "a", "n": 1}], SCHEMA)
    c = store.write_table("s", "k3", "o", [{"id": "a", "n": 2}], SCHEMA)
    assert a.sha256 == b.sha256 != c.sha256


def test_fsspec_memory_root():
    store = ArtifactStore("memory://infuse-test")
    ref = store.write_table("s", "k", "o", [{"id": "x", "n": 5}], SCHEMA)
    assert store.committed("s", "k", "o") == ref
    assert store.read(ref).num_rows == 1
    assert store.display(ref.path).startswith("memory://")


def test_rejects_schema_and_manifest(tmp_path):
    store = ArtifactStore(str(tmp_path))
    rej = store.write_rejects("s", "k", [{"id": "f.pdf", "step": "s", "reason": "corrupt", "message": "bad",
                                          "detail": "{}"}])
    assert store.read(rej).column_names == ["id", "step", "reason", "message", "detail"]
    m = RunManifest(store, "run-1", {"name": "t"})
    m.record("s", {"key": "k", "rows_in": 1})
    assert RunManifest.load_latest(store) is None, "a run in progress is not `latest`"
    m.save(status="completed")
    latest = RunManifest.load_latest(store)
    assert latest["run_id"] == "run-1" and latest["steps"]["s"]["rows_in"] == 1
    assert json.loads((tmp_path / "manifests/latest.json").read_text()) == {"run_id": "run-1"}


def test_copied_root_reads_its_own_files(tmp_path):
    import shutil

    store = ArtifactStore(str(tmp_path / "a"))
    store.write_table("s", "k", "o", [{"id": "a", "n": 1}], SCHEMA)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    copy = ArtifactStore(str(tmp_path / "b"))
    ref = copy.committed("s", "k", "o")
    assert ref is not None and ref.path.startswith(str(tmp_path / "b"))
    shutil.rmtree(tmp_path / "a")
    assert copy.read(ref).num_rows == 1


def test_invalidate_uncommits_but_keeps_units_unless_fresh(tmp_path):
    store = ArtifactStore(str(tmp_path))
    out = store.write_table("s", "k", "out", [{"id": "a", "n": 1}], SCHEMA)
    store.commit_unit("s", "k", "shard-00000", {"qa": pa.Table.from_pylist([{"id": "a", "n": 1}], schema=SCHEMA)})
    store.commit_step("s", "k", {"out": out})
    assert store.step_committed("s", "k") is not None
    (tmp_path / "artifacts/s/k/out.parquet.tmp-dead").write_bytes(b"half")  # a killed write
    store.invalidate("s", "k")
    assert store.step_committed("s", "k") is None and store.committed("s", "k", "out") is None
    assert store.load_unit("s", "k", "shard-00000") is not None, "a resumable unit survives a plain recompute"
    assert not (tmp_path / "artifacts/s/k/out.parquet.tmp-dead").exists(), "stale temp files are removed"
    store.invalidate("s", "k", fresh=True)
    assert store.load_unit("s", "k", "shard-00000") is None, "--refresh starts over"


def test_unit_commits_all_its_tables_or_none(tmp_path, monkeypatch):
    store = ArtifactStore(str(tmp_path))
    t = lambda n: pa.Table.from_pylist([{"id": "a", "n": n}], schema=SCHEMA)  # noqa: E731
    store.commit_unit("s", "k", "u", {"qa": t(1), "status": t(1)})
    real = store._write_text_atomic

    def killed(path, text):  # the process dies just before the unit file is renamed into place
        if path.endswith(".unit.json"):
            raise KeyboardInterrupt
        real(path, text)

    monkeypatch.setattr(store, "_write_text_atomic", killed)
    with pytest.raises(KeyboardInterrupt):
        store.commit_unit("s", "k", "u", {"qa": t(2), "status": t(2)})
    monkeypatch.undo()
    refs = store.load_unit("s", "k", "u")
    assert [store.read(refs[n]).column("n").to_pylist() for n in ("qa", "status")] == [[1], [1]], \
        "the old version stays whole: never a new qa beside an old status"
    store.invalidate("s", "k")  # the orphaned new files go at the next start
    names = sorted(p.name for p in (tmp_path / "artifacts/s/k").iterdir())
    assert len([n for n in names if n.endswith(".parquet")]) == 2


def test_dir_artifact_commits_atomically_with_per_file_hashes(tmp_path):
    store = ArtifactStore(str(tmp_path))
    with pytest.raises(RuntimeError):
        with store.dir_writer("train", "k", "model") as out:
            (out.path / "weights.bin").write_bytes(b"x" * 10)
            raise RuntimeError("killed mid-write")
    assert store.committed("train", "k", "model") is None
    assert not list((tmp_path / "artifacts/train/k").iterdir()), "nothing half-written is left"
    with store.dir_writer("train", "k", "model") as out:
        (out.path / "weights.bin").write_bytes(b"x" * 10)
        (out.path / "sub").mkdir()
        (out.path / "sub" / "card.json").write_text("{}")
    ref = store.committed("train", "k", "model")
    assert ref == out.ref and ref.kind == "model" and ref.rows == 2 and store.verify(ref)
    meta = json.loads((tmp_path / "artifacts/train/k/model.meta.json").read_text())
    assert meta["files"]["weights.bin"]["sha256"] == hashlib.sha256(b"x" * 10).hexdigest()
    (tmp_path / "artifacts/train/k/model/weights.bin").write_bytes(b"x")  # truncated afterwards
    assert store.committed("train", "k", "model") is None, "a directory that lost bytes is not trusted"


def test_dir_artifact_on_a_remote_root():
    store = ArtifactStore("memory://infuse-dir-test")
    ref = store.write_dir("s", "k", "report", {"report.md": b"# hi", "plot.png": b"png"})
    assert store.committed("s", "k", "report") == ref
    local = store.local_dir(ref)
    assert (local / "report.md").read_bytes() == b"# hi"
