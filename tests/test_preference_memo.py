"""Preference replies are kept by (model content, prompt, k, sampling settings): a run whose step key changed for
another reason (more prompts, a user pairs file) samples only the replies it lacks."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from tiny_models import FACTS, fact_rows, make_tiny_model

REPO = Path(__file__).resolve().parent.parent
OFF = ("parse", "chunk", "clean", "filter", "dedup", "synthesize", "qa_filter", "select", "mix")


def write_recipe(tmp: Path, tiny: Path, preference: dict) -> Path:
    rows = fact_rows(1, system="Answer briefly.")
    (tmp / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    (tmp / "chunks.jsonl").write_text("\n".join(json.dumps({"chunk_id": f"chunk-{i}", "doc_id": f"doc-{i}",
                                                            "text": f"Notes. {a}"}) for i, (_, a) in enumerate(FACTS)),
                                      encoding="utf-8")
    (tmp / "docs").mkdir(exist_ok=True)
    recipe = {"name": "pref-memo", "input": str(tmp / "docs"), "storage": str(tmp / "runs"),
              "plugins": [str(REPO / "tests" / "pref_steps.py")], "model": {"path": str(tiny)},
              "steps": {**{s: {"enabled": False} for s in OFF},
                        "corpus": {"rows": str(tmp / "rows.jsonl"), "chunks": str(tmp / "chunks.jsonl")},
                        "sft": {"enabled": True, "method": "lora", "max_steps": 2, "batch_size": 1, "max_length": 64,
                                "lora": {"r": 4, "alpha": 8, "dropout": 0.0}},
                        "preference": {"enabled": True, "sample_from": ["sft"], "samples_per_prompt": 2,
                                       "max_new_tokens": 8, "seed": 1,
                                       "llm": {"backend": "transformers", "device": "cpu"}, **preference}}}
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


@pytest.mark.usefixtures("prefect_server")
def test_more_prompts_sample_only_the_new_ones(tmp_path):
    from infuse.flows.pipeline import run_recipe

    tiny = make_tiny_model(tmp_path / "tiny")
    one = run_recipe(str(write_recipe(tmp_path, tiny, {"max_prompts": 2})))["preference"]
    assert one["stats"]["sample_memo"] == {"sft": {"memo_hits": 0, "memo_misses": 4}}
    two = run_recipe(str(write_recipe(tmp_path, tiny, {"max_prompts": 3})))["preference"]
    assert two["key"] != one["key"]
    memo = two["stats"]["sample_memo"]["sft"]
    assert memo["memo_hits"] + memo["memo_misses"] == 6 and memo["memo_misses"] <= 2
    first = {(s["sample_id"], s["k"]): s["text"] for s in pq.read_table(one["outputs"]["samples"]["path"]).to_pylist()}
    second = {(s["sample_id"], s["k"]): s["text"] for s in pq.read_table(two["outputs"]["samples"]["path"]).to_pylist()}
    assert len(second) == 6 and sum(second.get(k) == v for k, v in first.items()) == memo["memo_hits"]
