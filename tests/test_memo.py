"""Incremental chunk, clean and filter: per-row memo (tasks/framework/memo.py), outputs equal to a from-scratch run."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import yaml

from infuse.flows import steps as _registered  # noqa: F401  (registers the steps)
from infuse.flows.recipe import load_recipe
from infuse.storage import ArtifactRef, ArtifactStore
from infuse.tasks.framework.step import StepContext, get_step

STEPS = ("parse", "chunk", "clean", "filter")
INPUTS = {"chunk": {"documents": "parse"}, "clean": {"chunks": "chunk"}, "filter": {"chunks": "clean"}}


def run_steps(recipe_path: Path) -> dict[str, dict]:
    """parse -> chunk -> clean -> filter through Step.execute, as the flow runs them (without Prefect)."""
    recipe = load_recipe(recipe_path)
    store = ArtifactStore(recipe.storage)
    done: dict[str, dict] = {}
    for name in STEPS:
        step = get_step(name)()
        cfg = step.config(recipe)
        inputs = {art: done[producer]["outputs"][art] for art, producer in INPUTS.get(name, {}).items()}
        key = step.cache_key(cfg, inputs)
        ctx = StepContext(step, key, store, cfg, {n: ArtifactRef.from_dict(r) for n, r in inputs.items()})
        done[name] = step.execute(ctx).to_dict()
    return done


def table(store_root: str, ref: dict) -> pa.Table:
    return ArtifactStore(store_root).read(ArtifactRef.from_dict(ref))


def write_recipe(tmp_path: Path, docs: Path, storage: str) -> Path:
    path = tmp_path / f"{storage}.yaml"
    # two cheap stats (one with a 3σ bound fitted on the corpus) keep the test fast; the memo is the same for all
    ops = [{"name": "text_length_filter", "auto": {"min_samples": 2}}, {"name": "infuse_words_num", "min": 3}]
    path.write_text(yaml.safe_dump({"name": "memo", "input": str(docs), "storage": str(tmp_path / storage),
                                    "steps": {"filter": {"ops": ops}}}))
    return path


DOC = "# {title}\n\n{body}\n\nContact ops@lotus.example for help with “{title}”.   See https://lotus.example/{n}.\n"
BODY = ("LotusDB keeps a write-ahead log and flushes the memtable to sorted files when it fills. "
        "Compaction merges the sorted files in the background, so reads touch fewer files. ")


def test_after_adding_one_document_only_its_rows_are_recomputed_and_outputs_equal_a_fresh_run(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(6):
        (docs / f"d{n}.md").write_text(DOC.format(title=f"Topic {n}", body=BODY * (n + 1), n=n), encoding="utf-8")
    (docs / "web.jsonl").write_text("".join(json.dumps({"id": i, "text": f"Record {i}. " + BODY}) + "\n"
                                            for i in range(5)), encoding="utf-8")
    recipe = write_recipe(tmp_path, docs, "runs")
    first = run_steps(recipe)
    assert first["chunk"]["stats"]["memo_hits"] == 0 and first["chunk"]["stats"]["memo_misses"] == 11

    (docs / "d_new.md").write_text(DOC.format(title="New topic", body="A new document about backups. " * 5, n=99),
                                   encoding="utf-8")
    second = run_steps(recipe)
    root = str(tmp_path / "runs")
    new_chunks = [r for r in table(root, second["chunk"]["outputs"]["chunks"]).to_pylist() if r["path"] == "d_new.md"]
    assert second["parse"]["stats"]["files_parsed"] == 1
    assert (second["chunk"]["stats"]["memo_misses"], second["chunk"]["stats"]["memo_hits"]) == (1, 11)
    assert second["clean"]["stats"]["memo_misses"] == len(new_chunks) >= 1
    assert second["filter"]["stats"]["memo_misses"] == len(new_chunks)
    assert second["clean"]["stats"]["memo_hits"] == first["clean"]["stats"]["memo_misses"]

    fresh = run_steps(write_recipe(tmp_path, docs, "fresh"))  # a new storage root: everything from scratch
    assert fresh["chunk"]["stats"]["memo_hits"] == 0
    for step, art in (("chunk", "chunks"), ("clean", "chunks"), ("filter", "scored"), ("filter", "chunks")):
        incremental, scratch = (table(r, res[step]["outputs"][art]) for r, res in ((root, second),
                                                                                   (str(tmp_path / "fresh"), fresh)))
        assert incremental.equals(scratch), (step, art)
    assert second["filter"]["stats"]["bounds"] == fresh["filter"]["stats"]["bounds"], "3σ bounds refitted on all"
    for step in STEPS:
        assert table(root, second[step]["rejects"]).equals(table(str(tmp_path / "fresh"), fresh[step]["rejects"]))
