"""Multi-turn dialogues and knowledge augmentation (summary, atomic_facts, rewrite, RAFT) through the
real openai backend and a real local HTTP server (tests/faulty_server.py), then through qa_filter.

The server answers by prompt kind (it reads the system message) from the passage it is shown, so the
test checks the strategies' requests, parsing, provenance and the checks qa_filter runs on them.
"""
from __future__ import annotations

import json
import re
from collections import Counter

import pyarrow as pa
import pytest
from faulty_server import FaultyServer

from infuse.operators.llm import make_backend
from infuse.operators.qa_filter import QAFilterConfig, qa_filter
from infuse.operators.synthesize import QA_SCHEMA, SynthConfig, plan, run_items

OPS = ("LotusDB stores each table in an append-only log. Compaction runs every night at 02:00 and merges log "
       "segments older than seven days. Backups are taken after compaction finishes.")
OPS2 = "Compaction can be paused with lotusctl compaction pause and resumed later with lotusctl compaction resume."
NET = ("The LotusDB server listens on port 7070 by default. Clients connect over TLS when tls_cert is set in the "
       "configuration file, and plain TCP otherwise.")
CACHE = ("The block cache keeps recently read blocks in memory. Its size is set by block_cache_mb and defaults to "
         "128 megabytes; a larger cache helps read-heavy workloads.")
MOON = "The moon is made of green cheese and orbits the sun every twenty days."


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=\.)\s+", text) if s.strip()]


def passage(body: dict) -> str:
    user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
    m = re.search(r"<Context>(.*)</Context>", user, re.S)
    return m.group(1) if m else user


def _dialogue(text: str, sents: list[str], system: str, user: str) -> str:
    second = MOON if "7070" in text else sents[min(1, len(sents) - 1)]  # the network chunk's second turn is made up
    return json.dumps([{"question": f"What does the passage starting '{text[:25]}' say first?", "answer": sents[0]},
                       {"question": "And what does it say after that?", "answer": second},
                       {"question": "Anything else about it?", "answer": sents[-1]}])


def _summary(text: str, sents: list[str], system: str, user: str) -> str:
    return MOON if "block cache" in text else " ".join(sents)


def _facts(text: str, sents: list[str], system: str, user: str) -> str:
    return "\n".join(f"- {s}" for s in sents)


def _rewrite(text: str, sents: list[str], system: str, user: str) -> str:
    if "engineer" in system:
        return " ".join(sents)
    return "To put it another way, " + " ".join(reversed(sents)) + " That is all there is to it."


def _raft(text: str, sents: list[str], system: str, user: str) -> str:
    blocks = dict(re.findall(r"\[(\d+)\]\n(.*?)(?=\n\n\[\d+\]\n|\n\nQuestion:)", user, re.S))
    key = "Compaction runs" if user.endswith("When does compaction run?") else "port 7070"
    label = next((k for k, v in blocks.items() if key in v), "1")
    cited = str(int(label) % len(blocks) + 1) if key == "port 7070" else label  # one cites the wrong document
    return f'[{cited}] says: "{blocks[label].split(". ")[0]}". {blocks[label]}'


def _questions(text: str, sents: list[str], system: str, user: str) -> str:
    if "Compaction runs" in text:
        return json.dumps(["When does compaction run?"])
    return json.dumps(["Which port is used?" if "port 7070" in text else f"What does '{text[:30]}' say?"])


# (what the system prompt says, in any case, how a helpful model answers it): the first that matches
REPLIES = (("Write a conversation", _dialogue), ("detailed summary", _summary), ("List every fact", _facts),
           ("Rewrite the text", _rewrite), ("Several documents follow", _raft), ("questions", _questions))


def reply(body: dict) -> str:
    """What a helpful model would write for each prompt, made from the passage it is shown."""
    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
    user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
    text = passage(body)
    for marker, answer in REPLIES:
        if marker.lower() in system.lower():
            return answer(text, sentences(text), system, user)
    raise AssertionError(f"unexpected prompt: {system[:80]}")


def corpus():
    docs, chunks = [], []
    for doc_id, texts in (("ops", [OPS, OPS2]), ("net", [NET]), ("cache", [CACHE])):
        text = "\n\n".join(texts)
        docs.append({"doc_id": doc_id, "path": f"{doc_id}.md", "format": "markdown", "title": f"{doc_id} guide",
                     "text": text, "sections": [], "pages": [], "metadata": "{}"})
        pos = 0
        for i, t in enumerate(texts):
            start = text.index(t, pos)
            pos = start + len(t)
            chunks.append({"chunk_id": f"{doc_id}-c{i}", "doc_id": doc_id, "path": f"{doc_id}.md", "format": "markdown",
                           "chunk_index": i, "text": t, "heading_path": [], "page": None, "start": start, "end": pos,
                           "kind": "text"})
    return chunks, docs


def run(strategies: list[str], **cfg_kw):
    chunks, docs = corpus()
    cfg = SynthConfig(by_format={"markdown": strategies}, paraphrase={"enabled": False}, lang="en", **cfg_kw)
    with FaultyServer(fail_rate=0.0, content_fn=reply) as server:
        backend = make_backend({"backend": "openai", "base_url": server.base_url, "model": "m", "max_retries": 0})
        rows, status = run_items(plan(chunks, docs, cfg), backend, cfg, chunks=chunks, docs=docs)
    assert all(s.status == "done" for s in status), [(s.strategy, s.error_kind, s.error) for s in status]
    kept, rejects = qa_filter(pa.Table.from_pylist(rows, schema=QA_SCHEMA), {c["chunk_id"]: c["text"] for c in chunks},
                              QAFilterConfig(min_rows_for_sigma=1000))
    return rows, kept.to_pylist(), rejects, {c["chunk_id"]: c for c in chunks}


def by_chunk(rows: list[dict]) -> dict[str, dict]:
    return {r["chunk_id"]: r for r in rows}


def test_dialogue_grounded_multi_turn_and_an_ungrounded_turn_dropped():
    rows, kept, rejects, chunks = run(["dialogue"])
    assert [r["strategy"] for r in rows] == ["dialogue"] * 4
    ops = by_chunk(rows)["ops-c0"]
    assert [m["role"] for m in ops["messages"]] == ["user", "assistant"] * 3
    assert ops["messages"][3]["content"] == "Compaction runs every night at 02:00 and merges log segments older than seven days."
    assert (ops["source_chunk_ids"], ops["span_start"], ops["span_end"]) == (["ops-c0"], 0, len(OPS))
    assert json.loads(ops["meta"]) == {"turns": 3}
    assert by_chunk(kept)["ops-c0"]["messages"] == ops["messages"]  # every turn grounded: kept whole
    # the second answer about the network chunk is not in its source: the dialogue keeps its first turn only
    net = by_chunk(kept)["net-c0"]["messages"]
    assert [(m["role"], m["content"]) for m in net][1:] == [("assistant", sentences(NET)[0])]
    assert len(net) == 2
    [cut] = [r for r in rejects if r.id.startswith(by_chunk(rows)["net-c0"]["sample_id"])]
    assert (cut.reason, cut.detail["turn"], cut.detail["kept_turns"], cut.detail["dropped_turns"]) == \
           ("ungrounded_turn", 1, 1, 2)
    assert len(kept) == 4


def first(rows: list[dict], **match: str) -> dict:
    """The first row with these values."""
    return next(r for r in rows if all(r[k] == v for k, v in match.items()))


def assert_provenance(row: dict, chunks: dict[str, dict]) -> None:
    """The source document, chunks and span of an output, and the prompt that made it."""
    src = [chunks[c] for c in row["source_chunk_ids"]]
    assert src
    assert {c["doc_id"] for c in src} == {row["doc_id"]}
    assert row["generator"] == "m"
    assert row["span_start"] <= src[0]["start"]
    assert row["span_end"] >= src[-1]["end"]
    assert row["prompt_version"].startswith(f"{row['strategy']}.en.v1@")


def test_knowledge_augmentation_grounded_with_provenance():
    rows, kept, rejects, chunks = run(["summary", "atomic_facts", "rewrite"], summary={"min_chars": 50},
                                      rewrite={"k": 2})
    strategy_of = {r["sample_id"]: r["strategy"] for r in rows}
    assert sorted(Counter(strategy_of.values()).items()) == [("atomic_facts", 4), ("rewrite", 8), ("summary", 3)]
    for r in rows:
        assert_provenance(r, chunks)
    facts = first(rows, strategy="atomic_facts", chunk_id="ops-c0")
    assert facts["messages"][0]["content"] == "What facts does the documentation state about ops guide? List them one per line."
    assert facts["messages"][1]["content"].splitlines() == sentences(OPS)
    summary_ops = first(rows, strategy="summary", doc_id="ops")
    assert (summary_ops["source_chunk_ids"], summary_ops["cpt_text"]) == (["ops-c0", "ops-c1"], True)
    rewrites = [r for r in rows if (r["strategy"], r["chunk_id"]) == ("rewrite", "ops-c0")]
    assert [r["messages"][0]["content"] for r in rewrites] == ["Tell me about ops guide.", "What should I know about ops guide?"]
    assert [r["cpt_text"] for r in rewrites] == [True, True]
    assert not facts["cpt_text"]
    # checked like QA answers: the summary that is not in its source is dropped, the rest kept
    assert [(r.reason, strategy_of[r.id]) for r in rejects] == [("ungrounded", "summary")]
    assert len(kept) == len(rows) - 1


@pytest.mark.slow  # embeds the corpus with the packaged MiniLM to pick the distractors
def test_raft_names_its_true_source_among_distractors():
    rows, kept, rejects, chunks = run(["raft"], raft={"questions": 1, "distractors": 2})
    ops = next(r for r in rows if r["chunk_id"] == "ops-c0")
    meta = json.loads(ops["meta"])
    assert meta["question"] == "When does compaction run?" and meta["labels"] == 3
    # distractors come from other documents, never from the source's own document
    assert len(meta["distractor_chunk_ids"]) == 2 and all(chunks[c]["doc_id"] != "ops" for c in meta["distractor_chunk_ids"])
    user = ops["messages"][0]["content"]
    assert f"[{meta['cite']}]\n{OPS}" in user and user.endswith("Question: When does compaction run?")
    assert all(chunks[c]["text"] in user for c in meta["distractor_chunk_ids"])
    assert ops["messages"][1]["content"].startswith(f"[{meta['cite']}] says:")
    assert ops["source_chunk_ids"] == ["ops-c0"]  # grounding is against the true source only
    assert ops["sample_id"] in {r["sample_id"] for r in kept}
    # the network answer cites a distractor: rejected with the label it should have named
    net = next(r for r in rows if r["chunk_id"] == "net-c0")
    [wrong] = [r for r in rejects if r.id == net["sample_id"]]
    assert wrong.reason == "wrong_citation" and wrong.detail["expected"] == json.loads(net["meta"])["cite"]


def test_llm_samples_that_state_a_fact_are_counted_for_it():
    """facts and atomic_facts side by side through the scripted server: the LLM's fact list states the port and
    the compaction time, so its samples are tagged with those facts and the coverage counts them."""
    from infuse.operators.synthesize.coverage import tag_facts

    rows, _, _, _ = run(["facts", "atomic_facts"], facts={"phrasings": 3})
    metas = {r["sample_id"]: json.loads(r["meta"] or "{}") for r in rows}
    port = {m["fact_id"] for m in metas.values() if m.get("short") == "7070"}
    assert len(port) == 1
    coverage = tag_facts(rows)
    llm_rows = {r["doc_id"]: r for r in rows if r["strategy"] == "atomic_facts"}
    assert port <= set(json.loads(llm_rows["net"]["meta"])["fact_ids"])
    assert not port & set(json.loads(llm_rows["cache"]["meta"]).get("fact_ids", []))  # another document's fact
    assert coverage["other_samples_stating_a_fact"] >= 2
    assert coverage["samples_per_fact"]["max"] >= 4  # 3 phrasings + the LLM's fact list
