"""Documents to an evaluated model in one real run, with no plug-in table anywhere.

Two of examples/' files (the error-code CSV and the Chinese FAQ) go through
parse -> chunk -> clean -> filter -> dedup -> synthesize (the `facts` template
strategy: no LLM) -> qa_filter -> mix -> sft (a tiny config-built model, a few
steps) -> evaluate (base and sft on mix's held-out split), on the tests' real
Prefect server. Every row is accounted for from step to step: kept, or in
exactly one step's rejects.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
import yaml
from cli_helpers import manifests
from safetensors.torch import load_file
from tiny_models import make_tiny_model

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DOCS = ("lotusdb_error_codes.csv", "lotusdb_faq_zh.md")
DATA_STEPS = ("parse", "chunk", "clean", "filter", "dedup", "synthesize", "qa_filter", "mix")


def rows(ref: dict, *columns: str) -> list[dict]:
    return pq.read_table(ref["path"], columns=list(columns) or None).to_pylist()


def ids(ref: dict, column: str) -> list[str]:
    return pq.read_table(ref["path"], columns=[column]).column(column).to_pylist()


def test_documents_to_an_evaluated_model(tmp_path):
    from infuse.flows.pipeline import run_recipe

    docs = tmp_path / "docs"
    docs.mkdir()
    for name in DOCS:
        shutil.copy(EXAMPLES / name, docs / name)
    tiny = make_tiny_model(tmp_path / "tiny")
    recipe = {
        "name": "e2e", "input": str(docs), "storage": str(tmp_path / "runs"), "model": {"path": str(tiny)},
        "steps": {
            "chunk": {"target_chars": 500, "max_chars": 1000, "overlap_chars": 50},
            "synthesize": {"by_format": {"csv": ["facts"], "markdown": ["facts"], "default": [], "code": [],
                                         "log": []},
                           "max_llm_items": 0, "paraphrase": {"enabled": False}, "facts": {"phrasings": 2}},
            "mix": {"domain_ratio": 1.0, "general": [], "eval_ratio": 0.3},
            # max_length: the tiny tokenizer knows English only, so a Chinese FAQ answer costs a token per byte
            "sft": {"enabled": True, "method": "full", "max_steps": 4, "batch_size": 4, "max_length": 512,
                    "learning_rate": 1e-3, "warmup_ratio": 0.0, "save_steps": 4},
            "evaluate": {"enabled": True, "max_domain_items": 12, "max_general_items": 0, "paraphrases": 0,
                         "max_new_tokens": 8, "loss": False, "bootstrap": 50, "rag": {"enabled": False},
                         "llm": {"backend": "transformers", "device": "cpu"}},
        },
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    res = run_recipe(str(path))
    steps = manifests(tmp_path / "runs")[-1]["steps"]
    assert {s: e["state"] for s, e in steps.items()} == dict.fromkeys((*DATA_STEPS, "sft", "evaluate"), "Completed")
    for step in (*DATA_STEPS, "sft", "evaluate"):
        assert steps[step]["stats"]["kept"] > 0, step
        for name, out in steps[step]["outputs"].items():
            assert out["rows"] > 0, f"{step}.{name} is empty"
    for step, entry in steps.items():  # each step read what the step before it wrote
        for name, src in entry["inputs_from"].items():
            producer, artifact = src.split(".")
            assert entry["inputs"][name] == steps[producer]["outputs"][artifact]["sha256"], (step, name)
    assert {k: steps["sft"]["inputs_from"][k] for k in ("train", "eval")} == {"train": "mix.train", "eval": "mix.eval"}
    assert steps["evaluate"]["inputs_from"]["sft.model"] == "sft.model"
    assert steps["evaluate"]["inputs_from"]["eval"] == "mix.eval"

    # fates: both files kept; every chunk kept by dedup or rejected by exactly one of clean, filter, dedup
    assert {f["path"]: f["fate"] for f in steps["parse"]["input_files"]} == dict.fromkeys(DOCS, "kept")
    chunked = ids(res["chunk"]["outputs"]["chunks"], "chunk_id")
    kept = ids(res["dedup"]["outputs"]["chunks"], "chunk_id")
    dropped = [i for step in ("clean", "filter", "dedup") for i in ids(res[step]["rejects"], "id")]
    assert len(dropped) == len(set(dropped)) and sorted(kept + dropped) == sorted(chunked)
    # synthesize: every kept chunk is the source of a sample, or a reject that says why not
    samples = rows(res["synthesize"]["outputs"]["qa"], "sample_id", "chunk_id", "source_chunk_ids", "strategy")
    assert {r["strategy"] for r in samples} == {"facts"}
    assert {c for r in samples for c in r["source_chunk_ids"]} | set(ids(res["synthesize"]["rejects"], "id")) \
        == set(kept)
    assert {r["status"] for r in rows(res["synthesize"]["outputs"]["status"], "status")} == {"done"}
    synth_ids = [r["sample_id"] for r in samples]
    assert len(set(synth_ids)) == len(synth_ids)
    # qa_filter and mix: every sample kept or rejected once; mix splits what qa_filter kept into train and eval
    qa_ids = ids(res["qa_filter"]["outputs"]["qa"], "sample_id")
    assert sorted(qa_ids + ids(res["qa_filter"]["rejects"], "id")) == sorted(synth_ids)
    train_ids = ids(res["mix"]["outputs"]["train"], "sample_id")
    eval_ids = ids(res["mix"]["outputs"]["eval"], "sample_id")
    assert not set(train_ids) & set(eval_ids)
    assert sorted(train_ids + eval_ids + ids(res["mix"]["rejects"], "id")) == sorted(qa_ids)

    # sft trained on exactly mix's train rows, synthesize's samples, and moved the weights
    work = tmp_path / "runs" / "artifacts" / "sft" / res["sft"]["key"] / "_work"
    trained = pq.read_table(work / "data" / "train.parquet", columns=["sample_id"]).column("sample_id").to_pylist()
    assert sorted(trained) == sorted(train_ids) and set(trained) <= set(synth_ids)
    prep = res["sft"]["stats"]["prep"]["train"]
    assert prep["samples"] == len(train_ids) and prep["kept"] + len(ids(res["sft"]["rejects"], "id")) == len(train_ids)
    model = Path(res["sft"]["outputs"]["model"]["path"])
    before, after = load_file(tiny / "model.safetensors"), load_file(model / "model.safetensors")
    assert before.keys() == after.keys() and any(not torch.equal(before[k], after[k]) for k in before)

    # evaluate: every held-out row of mix's eval split asked (or rejected, with why), and base and sft each
    # answered every question asked
    questions = rows(res["evaluate"]["outputs"]["questions"], "item_id", "sample_id", "group")
    assert sorted([q["sample_id"] for q in questions] + ids(res["evaluate"]["rejects"], "id")) == sorted(eval_ids)
    assert {q["group"] for q in questions} == {"domain"}
    scores = rows(res["evaluate"]["outputs"]["scores"], "model", "item_id", "answer", "error", "strict")
    by_model = {m: sorted(s["item_id"] for s in scores if s["model"] == m) for m in ("base", "sft")}
    assert len(scores) == 2 * len(questions)
    assert by_model["base"] == by_model["sft"] == sorted(q["item_id"] for q in questions)
    assert all(s["error"] is None and s["answer"] is not None and s["strict"] is not None for s in scores)
    assert res["evaluate"]["stats"]["models"] == ["base", "sft"]
