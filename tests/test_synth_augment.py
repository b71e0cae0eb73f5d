"""evol_instruct and self_instruct through the real openai backend and a real local HTTP server.

The server answers by prompt kind (it reads the system message), so the test
checks the strategies' request waves, parsing and provenance end to end.
"""
from __future__ import annotations

import json

import pyarrow as pa
from faulty_server import FaultyServer

from infuse.operators.llm import make_backend
from infuse.operators.synthesize import SynthConfig, plan, run_items

CHUNK = ("LotusDB stores each table in an append-only log. Compaction runs every night at 02:00 "
         "and merges log segments older than seven days. Backups are taken after compaction.")


def reply(body: dict) -> str:
    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
    if "deeper and more demanding" in system:
        return "Rewritten question: Why does compaction run before backups, and what does it merge?"
    if "new aspect" in system.lower() or "breadth" in system.lower() or "different aspect" in system.lower():
        return "New question: How often are LotusDB log segments merged?"
    if "Answer the question using only the material" in system:
        return "Compaction runs every night at 02:00 and merges log segments older than seven days."
    if '"instruction"' in system:
        return json.dumps([{"instruction": "Summarise how LotusDB stores tables.",
                            "answer": "LotusDB stores each table in an append-only log."}])
    return json.dumps([{"question": "When does compaction run?",
                        "answer": "Compaction runs every night at 02:00 and merges log segments older than seven days."}])


def tables():
    doc = {"doc_id": "d1", "path": "ops.md", "format": "markdown", "title": "ops", "text": CHUNK,
           "sections": [], "pages": [], "metadata": "{}"}
    chunk = {"chunk_id": "c1", "doc_id": "d1", "path": "ops.md", "format": "markdown", "chunk_index": 0,
             "text": CHUNK, "heading_path": [], "page": None, "start": 0, "end": len(CHUNK), "kind": "text"}
    return pa.Table.from_pylist([chunk]), pa.Table.from_pylist([doc])


def test_evol_instruct_depth_and_breadth_add_evolved_samples():
    chunks, docs = tables()
    cfg = SynthConfig(by_format={"default": ["qa"]}, paraphrase={"enabled": False},
                      evol_instruct={"enabled": True, "depth": True, "breadth": True}, lang="en")
    with FaultyServer(fail_rate=0.0, content_fn=reply) as server:
        backend = make_backend({"backend": "openai", "base_url": server.base_url, "model": "m", "max_retries": 0})
        rows, status = run_items(plan(chunks, docs, cfg), backend, cfg, chunks=chunks.to_pylist(),
                                 docs=docs.to_pylist())
    assert [s.status for s in status] == ["done"]
    strategies = sorted(r["strategy"] for r in rows)
    assert strategies == ["qa", "qa+evol_breadth", "qa+evol_depth"]
    depth = next(r for r in rows if r["strategy"] == "qa+evol_depth")
    assert depth["messages"][-2]["content"].startswith("Why does compaction run before backups")
    assert depth["source_chunk_ids"] == ["c1"] and "evol_depth" in depth["prompt_version"]


def test_self_instruct_makes_instruction_samples():
    chunks, docs = tables()
    cfg = SynthConfig(by_format={"default": ["self_instruct"]}, paraphrase={"enabled": False},
                      self_instruct={"enabled": True, "n": 1}, lang="en")
    with FaultyServer(fail_rate=0.0, content_fn=reply) as server:
        backend = make_backend({"backend": "openai", "base_url": server.base_url, "model": "m", "max_retries": 0})
        rows, status = run_items(plan(chunks, docs, cfg), backend, cfg, chunks=chunks.to_pylist(),
                                 docs=docs.to_pylist())
    assert [s.status for s in status] == ["done"], status
    assert [r["messages"][-2]["content"] for r in rows] == ["Summarise how LotusDB stores tables."]
    assert rows[0]["strategy"] == "self_instruct" and rows[0]["chunk_id"] == "c1"
