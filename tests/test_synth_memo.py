"""A new document costs only its own LLM requests: synthesis items are kept by their content across runs.

Through the real flow against a real local HTTP server that counts requests.
The second run's step key differs (its chunks differ), yet it asks the LLM only
about the new document's chunks; the old items' samples come back unchanged.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from faulty_server import FaultyServer

pytestmark = pytest.mark.usefixtures("prefect_server")

TOPICS = ["harbour cranes", "glacier survey", "orchard irrigation", "bridge inspection"]


WORDS = ("valve pressure ledger north quarterly crew rotation harbour signal copper lantern survey margin "
         "winter ferry grain permit timber audit beacon canal meadow forge orbit quarry saddle tundra velvet "
         "willow yarrow zenith amber basalt cedar delta ember fjord garnet hazel iris juniper kelp lotus").split()


def doc_text(topic: str) -> str:
    """A few sections of varied prose about one topic (varied, so the quality filter keeps it)."""
    rng = random.Random(topic)
    paras = []
    for i in range(3):
        sents = [f"The {topic} team records {' '.join(rng.sample(WORDS, 6))} at site {rng.randint(100, 999)}."
                 for _ in range(6)]
        paras.append(f"## {topic.title()} part {i}\n\n" + " ".join(sents))
    return f"# {topic.title()}\n\n" + "\n\n".join(paras) + "\n"


def qa_content(body: dict) -> str:
    user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
    return json.dumps({"qa": [{"question": "What does the passage require?", "answer": user[-200:]}]})


def user_text(entry_body: dict) -> str:
    return " ".join(m["content"] for m in entry_body["messages"] if m["role"] == "user")


def recipe_for(tmp_path: Path, docs: Path, base_url: str) -> Path:
    data = {"name": "memo", "input": str(docs), "storage": str(tmp_path / "runs"),
            "steps": {"synthesize": {"llm": {"backend": "openai", "base_url": base_url, "model": "counted",
                                             "max_retries": 0},
                                     "by_format": {"markdown": ["qa"]}, "paraphrase": {"enabled": False},
                                     "shard_size": 4},
                      **{s: {"enabled": False} for s in ("filter", "dedup", "qa_filter", "mix")}}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_new_document_asks_only_about_itself(tmp_path):
    from infuse.flows.pipeline import run_recipe

    docs = tmp_path / "docs"
    docs.mkdir()
    for t in TOPICS[:3]:
        (docs / f"{t.replace(' ', '_')}.md").write_text(doc_text(t))
    bodies: list[dict] = []

    def content(body: dict) -> str:
        bodies.append(body)
        return qa_content(body)

    with FaultyServer(fail_rate=0.0, content_fn=content) as server:
        recipe = recipe_for(tmp_path, docs, server.base_url)
        first = run_recipe(str(recipe))["synthesize"]
        n_first = len(bodies)
        assert n_first == first["stats"]["items"] > 3, "one request per qa item in the first run"
        old_qa = {r["sample_id"]: r for r in pq.read_table(first["outputs"]["qa"]["path"]).to_pylist()}
        assert old_qa

        (docs / "new.md").write_text(doc_text(TOPICS[3]))
        second = run_recipe(str(recipe))["synthesize"]
        assert second["key"] != first["key"], "the step's inputs changed, so its key did"
        new_bodies = bodies[n_first:]
        assert new_bodies, "the new document's chunks were asked about"
        assert all("bridge inspection" in user_text(b).lower() for b in new_bodies), \
            "no request about an unchanged chunk"
        stats = second["stats"]
        assert stats["items_from_memo"] == first["stats"]["items"]
        assert stats["items"] == first["stats"]["items"] + len(new_bodies)
        qa = {r["sample_id"]: r for r in pq.read_table(second["outputs"]["qa"]["path"]).to_pylist()}
        assert set(old_qa) < set(qa)
        assert all(qa[k]["messages"] == v["messages"] for k, v in old_qa.items())

        # another model: every item is asked again (the memo is per LLM and sampling settings)
        data = yaml.safe_load(recipe.read_text())
        data["steps"]["synthesize"]["llm"]["extra_body"] = {"temperature": 0.3}
        recipe.write_text(yaml.safe_dump(data))
        n_before = len(bodies)
        third = run_recipe(str(recipe))["synthesize"]
        assert len(bodies) - n_before == third["stats"]["items"]
        assert third["stats"]["items_from_memo"] == 0
