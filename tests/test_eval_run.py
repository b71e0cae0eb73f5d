"""operators.evaluate.run.evaluate without Prefect or a step: plain rows in, rows and a report out.

A tiny config-built model answers (transformers, CPU); the answers are kept in a dict memo, so a second call
generates none; the synthesis LLM that rewords questions and grades answers is a scripted backend passed in
as a service; an answer whose grade cannot be read is a reject saying why.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from tiny_models import FACTS, make_tiny_model

from infuse.operators.evaluate.config import EvaluateConfig
from infuse.operators.evaluate.run import Inputs, evaluate
from infuse.operators.evaluate.services import Services
from infuse.operators.llm import ChatResult

ZORBLAT = FACTS[0][0]


class DictMemo:
    """The ItemMemo contract in a dict: hits and misses counted, finish keeps only the keys given."""

    def __init__(self) -> None:
        self.kept: dict[str, Any] = {}
        self.hits = self.misses = 0

    def get(self, key: str) -> tuple[Any, dict[str, str]] | None:
        if key not in self.kept:
            self.misses += 1
            return None
        self.hits += 1
        return self.kept[key], {}

    def put(self, entries) -> None:
        self.kept.update({key: value for key, value, _ in entries})

    def finish(self, keep) -> None:
        self.kept = {k: v for k, v in self.kept.items() if k in set(keep)}

    def stats(self) -> dict[str, int]:
        return {"memo_hits": self.hits, "memo_misses": self.misses}


class Scripted:
    """A synthesis backend: a paraphrase request gets one variant for Zorblat's question and no JSON for the
    others; a judge request gets grade 4 for Zorblat's question and an unreadable reply for the others."""

    def __init__(self) -> None:
        self.requests = 0

    def generate(self, reqs: list) -> list[ChatResult]:
        self.requests += len(reqs)
        return [ChatResult(r.id, text=self.reply(r.messages[-1]["content"])) for r in reqs]

    @staticmethod
    def reply(user: str) -> str:
        if "Answer to grade" in user:
            return '{"score": 4, "reason": "ok"}' if "Zorblat" in user else "no idea"
        if "Zorblat" in user:
            return json.dumps([{"question": "Which colour does the Zorblat river have?", "answer": "x"}])
        return "I cannot do that."


@contextmanager
def progress(total: int, desc: str, unit: str):
    class Bar:
        def update(self, n: int = 1, **info: Any) -> None:
            pass

    yield Bar()


def rows(pairs: list[tuple[str, str]], kind: str = "domain") -> list[dict[str, Any]]:
    return [{"sample_id": f"{kind}-{i}", "source": "domain" if kind == "domain" else "gen", "kind": kind, "doc_id": f"doc-{i}", "lang": "en",
             "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            for i, (q, a) in enumerate(pairs)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "base")


@pytest.fixture(scope="module")
def first(tmp_path_factory, tiny) -> dict[str, Any]:
    """One evaluation of two facts and a general row: a paraphrase each (one readable), the judge on."""
    work = tmp_path_factory.mktemp("work")
    o = EvaluateConfig(paraphrases=1, max_new_tokens=6, bootstrap=20, judge={"enabled": True},
                       rag={"enabled": False}, llm={"backend": "transformers", "device": "cpu"})
    inp = Inputs(base=tiny, eval_rows=rows(FACTS[:2]) + rows([("Say hello.", "Hello!")], "general"), train_rows=[])
    synth, memo = Scripted(), DictMemo()
    out = evaluate(inp, o, Services(memo, progress, work, synth=lambda: synth))
    return {"o": o, "inp": inp, "work": work, "synth": synth, "memo": memo, "out": out,
            "requests": synth.requests}


def test_evaluate_asks_every_question_and_scores_every_answer_from_plain_rows(first):
    out = first["out"]
    asked = {q["item_id"]: q for q in out.questions}
    assert sorted(asked) == ["domain:domain-0", "domain:domain-1", "general:general-0", "paraphrase:domain-0:1"]
    assert asked["paraphrase:domain-0:1"]["parent_id"] == "domain:domain-0"
    assert [(s["model"], s["item_id"]) for s in out.scores] == [("base", i) for i in asked]
    assert [bool(s["loss_tokens"]) for s in out.scores] == [s["group"] == "general" for s in out.scores]
    assert out.report.stats["answer_memo"] == {"memo_hits": 0, "memo_misses": 4}
    assert out.report.images["accuracy"][:4] == b"\x89PNG"


def test_evaluate_grades_with_the_judge_and_an_unreadable_grade_is_a_reject(first):
    out = first["out"]
    assert {s["item_id"]: s["judge"] for s in out.scores} == {
        "domain:domain-0": 4.0, "paraphrase:domain-0:1": 4.0, "domain:domain-1": None, "general:general-0": None}
    assert [(r.id, r.reason) for r in out.rejects] == [
        ("domain-1", "paraphrase_malformed"), ("domain:domain-1", "judge_unreadable"),
        ("general:general-0", "judge_unreadable")]
    assert out.rejects[1].detail == {"model": "base", "item_id": "domain:domain-1", "raw": "no idea"}
    assert (out.rows_in, out.kept) == (5, 4), "the ungraded answers are not questions turned down"
    assert "### Judge rubric" in out.report.markdown
    assert first["requests"] == 2 + 4, "two paraphrase requests, one judge request per answer"


def test_a_second_evaluation_generates_nothing_and_asks_no_paraphrase_again(first):
    later = DictMemo()  # the next run's memo: what the first one kept
    later.kept = dict(first["memo"].kept)
    o, synth = first["o"], first["synth"]
    again = evaluate(first["inp"], o.model_copy(update={"judge": o.judge.model_copy(update={"enabled": False})}),
                     Services(later, progress, first["work"], synth=lambda: synth))
    assert again.report.stats["answer_memo"] == {"memo_hits": 4, "memo_misses": 0}
    assert [s["answer"] for s in again.scores] == [s["answer"] for s in first["out"].scores]
    assert synth.requests == first["requests"], "the paraphrases were read back from the work dir"


def test_evaluate_needs_an_eval_split_or_a_user_file(tmp_path, tiny):
    with pytest.raises(ValueError, match="needs mix's `eval` split"):
        evaluate(Inputs(base=tiny), EvaluateConfig(), Services(DictMemo(), progress, tmp_path))


def test_every_answer_the_judge_leaves_ungraded_is_a_reject_that_says_why():
    from infuse.operators.evaluate.judge import judge

    class Backend:
        def generate(self, reqs: list) -> list[ChatResult]:
            replies = [ChatResult("0", text='{"score": 5}'), ChatResult("1", text='{"score": 9}'),
                       ChatResult("2", error="read timed out", error_kind="timeout"),
                       ChatResult("3", text="I would rather not say.")]
            return replies[: len(reqs)]

    rows = [{"model": "sft", "item_id": f"domain:{i}", "question": "Q?", "reference": "A", "answer": "A",
             "lang": "en"} for i in range(4)]
    grades, ungraded = judge(rows, Backend())
    assert grades == [5, None, None, None]
    assert [(r.id, r.reason) for r in ungraded] == [("domain:1", "judge_unreadable"), ("domain:2", "judge_failed"),
                                                    ("domain:3", "judge_unreadable")]
    assert ungraded[1].message == "sft: the judge request failed: timeout: read timed out"
    assert ungraded[2].detail["raw"] == "I would rather not say."
