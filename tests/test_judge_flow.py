"""evaluate's LLM judge and paraphrased questions through a real flow: the eval rows come from a plug-in step
(tests/eval_steps.py), the answering model is a tiny config-built one, and the synthesis LLM that rewords the
questions and grades the answers is a real local HTTP server (tests/faulty_server.py, no injected faults) whose
replies are scripted by the question they are about."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from faulty_server import FaultyServer
from tiny_models import FACTS, make_tiny_model

pytestmark = pytest.mark.usefixtures("prefect_server")

REPO = Path(__file__).resolve().parent.parent
OFF = ("parse", "chunk", "clean", "filter", "dedup", "synthesize", "qa_filter", "mix")
ZORBLAT, QUELLMOOR, PEXA = FACTS[0][0], FACTS[1][0], FACTS[2][0]
VARIANTS = {ZORBLAT: ["Which colour does the Zorblat river have?", "What hue is the Zorblat river?"],
            QUELLMOOR: ["Who was the founder of Quellmoor?", "Which person founded Quellmoor?"]}
ORDER = "Tell me the hue of the Zorblat river."  # an order, not a question: turned down
GRADES = {"Zorblat": 5, "Quellmoor": 3}  # by the subject of the graded question; Pexa's grade is unreadable


def scripted(body: dict) -> str:
    """Paraphrase requests: the question itself (turned down as the same), for Zorblat an order (turned down as no
    question), and two variants; Pexa's reply is no JSON. Judge requests: a grade by the question's subject; for
    Pexa a reply with no grade in it."""
    user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
    question = re.match(r"Question: (.*)", user).group(1)
    if "Answer to grade" in user:
        if "Pexa" in question:
            return "I would rather not say."
        return json.dumps({"score": next(g for k, g in GRADES.items() if k in question), "reason": "scripted"})
    if question == PEXA:
        return "I cannot do that."
    extra = [ORDER] if question == ZORBLAT else []
    return json.dumps([{"question": q, "answer": "x"} for q in [question, *extra, *VARIANTS[question]]])


def run_flow(tmp_path: Path) -> tuple[dict, list[dict], list[dict], list[dict], int]:
    """evaluate (two paraphrases per item, the judge on) over the three facts: its result, its questions, scores
    and rejects, and how many requests the scripted server answered."""
    from infuse.flows.pipeline import run_recipe

    tiny = make_tiny_model(tmp_path / "tiny")
    rows = [{"sample_id": f"fact-{i}", "messages": [{"role": "user", "content": q},
                                                    {"role": "assistant", "content": a}],
             "source": "domain", "kind": "domain", "doc_id": f"doc-{i}", "chunk_id": f"chunk-{i}",
             "span_start": None, "span_end": None, "strategy": "qa", "lang": "en", "split": "eval"}
            for i, (q, a) in enumerate(FACTS[:3])]
    rows.append({**rows[0], "sample_id": "train-0", "split": "train", "messages": [
        {"role": "user", "content": "Hello, how can I help you today?"},
        {"role": "assistant", "content": "You are a helpful assistant."}]})
    (tmp_path / "data.json").write_text(json.dumps({"rows": rows}), encoding="utf-8")
    (tmp_path / "docs").mkdir()
    with FaultyServer(fail_rate=0.0, content_fn=scripted) as srv:
        synth_llm = {"backend": "openai", "base_url": srv.base_url, "model": "scripted", "max_retries": 0,
                     "timeout_s": 30}
        steps = {**{s: {"enabled": False} for s in OFF}, "evalrows": {"path": str(tmp_path / "data.json")},
                 "evaluate": {"enabled": True, "paraphrases": 2, "judge": {"enabled": True}, "synth_llm": synth_llm,
                              "rag": {"enabled": False}, "loss": False, "bootstrap": 50, "max_new_tokens": 8,
                              "llm": {"backend": "transformers", "device": "cpu"}}}
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(yaml.safe_dump({"name": "judge", "input": str(tmp_path / "docs"),
                                          "storage": str(tmp_path / "runs"), "model": {"path": str(tiny)},
                                          "plugins": [str(REPO / "tests" / "eval_steps.py")], "steps": steps}),
                          encoding="utf-8")
        res = run_recipe(str(recipe))["evaluate"]
        answered = sum(1 for e in srv.log if e["outcome"] == "ok")
    tables = [pq.read_table(path).to_pylist() for path in
              (res["outputs"]["questions"]["path"], res["outputs"]["scores"]["path"], res["rejects"]["path"])]
    return res, *tables, answered


@pytest.fixture(scope="module")
def flow(tmp_path_factory, prefect_server) -> tuple[dict, list[dict], list[dict], list[dict], int]:
    return run_flow(tmp_path_factory.mktemp("judge"))


def test_paraphrases_are_asked_as_questions_of_their_own_and_the_rest_are_rejects(flow):
    res, questions, _, reject_rows, _ = flow
    # each kept variant is a question of its own, with its item's reference; the echoes, the order and the
    # malformed reply are rejects with their reasons, and only Pexa's item has no variants
    para = {q["question"]: q for q in questions if q["group"] == "paraphrase"}
    assert sorted(para) == sorted(VARIANTS[ZORBLAT] + VARIANTS[QUELLMOOR])
    for parent, (q, a) in zip(("domain:fact-0", "domain:fact-1"), FACTS[:2]):
        assert [(para[v]["parent_id"], para[v]["reference"]) for v in VARIANTS[q]] == [(parent, a)] * 2
    assert res["stats"]["groups"]["paraphrase"] == 4 and res["stats"]["groups"]["domain"] == 3
    assert sorted((r["id"], r["reason"]) for r in reject_rows if r["reason"].startswith("paraphrase")) == [
        ("fact-0", "paraphrase_not_question"), ("fact-0", "paraphrase_same"), ("fact-1", "paraphrase_same"),
        ("fact-2", "paraphrase_malformed")], reject_rows
    assert res["stats"]["rows_in"] == 7 + 4, "questions asked and turned down; an ungraded answer is not one"


def test_the_judge_grades_every_answer_and_an_unreadable_reply_is_a_reject(flow):
    res, _, scores, reject_rows, answered = flow
    # every answer, the paraphrased questions' included, graded as scripted; the unreadable reply leaves only
    # its own row ungraded, says why in the rejects, and the step still completes
    assert {s["question"] for s in scores} == {*VARIANTS[ZORBLAT], *VARIANTS[QUELLMOOR], ZORBLAT, QUELLMOOR, PEXA}
    assert {s["model"] for s in scores} == {"base"}
    assert answered == 3 + len(scores), "three paraphrase requests, then one judge request per answer"
    grades = {s["question"]: s["judge"] for s in scores}
    assert grades == {q: None if q == PEXA else float(next(g for k, g in GRADES.items() if k in q)) for q in grades}
    unread = [r for r in reject_rows if r["reason"].startswith("judge")]
    assert len(reject_rows) == 4 + len(unread), "paraphrase and judge rejects only"
    assert [(r["id"], r["reason"]) for r in unread] == [("domain:fact-2", "judge_unreadable")]
    assert json.loads(unread[0]["detail"]) == {"model": "base", "item_id": "domain:fact-2",
                                               "raw": "I would rather not say."}
    report = (Path(res["report"]["path"]) / "report.md").read_text(encoding="utf-8")
    assert "### Judge rubric" in report and "You grade an answer to a question" in report, "the rubric is saved"
