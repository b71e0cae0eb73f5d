"""The knowledge benchmark's corpus (bench/knowledge_corpus.py) and its scoring (bench/knowledge_bench.py).

The corpus is only a benchmark if infuse's own parsers read every fact back from the documents, if every
held-out question names facts that exist, is not a sentence of the documents and, for some, needs two facts.
A small corpus (seconds) is generated and parsed with the pipeline's parse call. The bench's summary is checked
on a made-up scores table: the headline ratio, the gain over base and forgetting.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _load(name: str):
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up; knowledge_bench imports knowledge_corpus
    spec.loader.exec_module(mod)
    return mod


kc = _load("knowledge_corpus")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("knowledge")
    kc.build(out, 24, seed=3)
    return out


def test_every_fact_is_in_its_parsed_document(corpus: Path) -> None:
    facts = kc.read_jsonl(corpus / "facts.jsonl")
    assert len(facts) == 24 and {f["lang"] for f in facts} == {"en", "zh"}
    docs = sorted(p.name for p in (corpus / "docs").iterdir())
    assert {d.rsplit(".", 1)[1] for d in docs} >= {"md", "csv", "xlsx", "docx"}
    for name in docs:
        text, _ = kc.parsed(corpus / "docs" / name)
        mine = [f for f in facts if f["doc"] == name]
        assert mine, f"{name} states no fact"
        for f in mine:
            assert f["value"] in text, f"{f['fact_id']} {f['value']!r} not in the parsed {name}"
    result = kc.check(corpus)
    assert result["problems"] == [] and result["facts_checked"] == 24


def test_questions_are_held_out_and_some_need_two_facts(corpus: Path) -> None:
    facts = {f["fact_id"]: f for f in kc.read_jsonl(corpus / "facts.jsonl")}
    questions = kc.read_jsonl(corpus / "questions.jsonl")
    texts = [kc.parsed(p)[0] for p in (corpus / "docs").iterdir()]
    headings = kc.faq_headings(list(facts.values()))
    assert sum(len(q["facts"]) == 1 for q in questions) == len(facts)  # one question per fact
    multi = [q for q in questions if len(q["facts"]) > 1]
    assert multi, "no question combines two facts"
    for q in questions:
        assert all(x in facts for x in q["facts"]), q
        assert q["answer"] == facts[q["facts"][-1]]["value"]  # the last fact is the answer
        assert q["lang"] == facts[q["facts"][-1]]["lang"]
        assert not any(q["question"] in t for t in texts), f"verbatim in a document: {q['question']}"
        assert q["question"] not in headings, f"an FAQ heading of the documents: {q['question']}"
        assert set(q) >= {"question", "answer", "aliases", "doc", "facts"}


def test_same_seed_same_bytes(tmp_path: Path, corpus: Path) -> None:
    """A re-run must hit the pipeline's per-file cache: DOCX/XLSX/PDF carry no 'now'."""
    kc.build(tmp_path, 24, seed=3)
    for p in (corpus / "docs").iterdir():
        assert (tmp_path / "docs" / p.name).read_bytes() == p.read_bytes(), p.name
    assert (tmp_path / "questions.jsonl").read_text() == (corpus / "questions.jsonl").read_text()


def test_the_check_fails_on_a_writer_that_loses_a_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A CSV writer that drops the last column: its facts are no longer in the parsed text."""
    real = kc.write_csv

    def lossy(doc, c):
        return real(doc, kc.Content(c.sections, c.header[:-1], [r[:-1] for r in c.rows], c.faq))

    monkeypatch.setattr(kc, "write_csv", lossy)
    kc.build(tmp_path, 24, seed=3)
    problems = kc.check(tmp_path)["problems"]
    assert problems and all(".csv" in p for p in problems)


def test_bench_summary_headline_gain_and_forgetting() -> None:
    kb = _load("knowledge_bench")
    questions = [{"question": f"q{i}", "answer": "7420", "aliases": [], "facts": [f"f{i}"], "lang": "en"}
                 for i in range(1, 11)]
    facts = [{"fact_id": f"f{i}", "kind": "product"} for i in range(1, 11)]
    right = {"base": 1, "sft": 8, "sft+rag": 10, "base+rag": 9}
    scores = []
    for model, n_right in right.items():
        for i in range(1, 11):
            ok = float(i <= n_right)
            scores.append({"model": model, "item_id": f"user:{i}", "group": "user", "question": f"q{i}",
                           "reference": "7420", "answer": "7420" if ok else "1234", "strict": ok, "contains": ok})
        if not model.endswith("+rag"):
            for i in range(4):  # sft forgets one general item of four
                ok = float(not (model == "sft" and i == 0))
                scores.append({"model": model, "item_id": f"general:{i}", "group": "general", "strict": None,
                               "contains": ok, "f1": ok, "loss_sum": 2.0 if model == "sft" else 1.0,
                               "loss_tokens": 1})
    s = kb.summarize(scores, questions, facts)
    assert s["tuned"] == ["sft"] and s["score"].startswith("strict")
    head = s["headline"]["sft"]
    assert head["ceiling"] == "sft+rag" and head["of_rag"] == pytest.approx(0.8)
    assert head["gain_points"]["mean"] == pytest.approx(70.0)
    assert s["forgetting"]["sft"]["contains"]["mean"] == pytest.approx(-25.0)
    assert s["forgetting"]["sft"]["loss"]["delta"] == pytest.approx(1.0)
    text = kb.tables(s, {"steps": {"sft": {"state": "Completed", "stats": {"wall_s": 12.0}}}})
    assert "closed-book / sft+rag = **0.80**" in text and "sft 12 s" in text
    json.dumps(s)  # what the bench writes to bench_result.json
