"""evaluate's report on hand-made scores: the strict headline (closed-book vs base and vs tuned+RAG, forgetting),
the per-fact table, and the flag counts."""
from __future__ import annotations

import pytest

from infuse.operators.evaluate import report as rep
from infuse.operators.evaluate.questions import Item


def _s(model: str, item: str, group: str, strict: float, contains: float | None = None, flag: str | None = None,
       **extra) -> dict:
    return {"model": model, "item_id": item, "group": group, "strict": strict,
            "contains": strict if contains is None else contains, "f1": strict, "rouge_l": strict, "judge": None,
            "flag": flag, "loss_sum": None, "loss_tokens": None, **extra}


MODELS = ["base", "sft", "dpo", "base+rag", "dpo+rag"]
# 4 closed-book questions (2 domain, 2 user) and 2 general ones; dpo knows 3 of 4, with RAG 4 of 4, base 1 of 4
RIGHT = {"base": {"d1"}, "sft": {"d1", "d2"}, "dpo": {"d1", "d2", "u1"}, "base+rag": {"d1", "d2", "u1"},
         "dpo+rag": {"d1", "d2", "u1", "u2"}}
SCORES = ([_s(m, i, "domain" if i[0] == "d" else "user", float(i in RIGHT[m])) for m in MODELS
           for i in ("d1", "d2", "u1", "u2")]
          + [_s(m, g, "general", v, loss_sum=l, loss_tokens=10) for m, vals in
             (("base", (1.0, 1.0, 20.0)), ("sft", (1.0, 1.0, 21.0)), ("dpo", (1.0, 0.0, 23.0))) for g, v, l in
             (("g1", vals[0], vals[2] / 2), ("g2", vals[1], vals[2] / 2))])


def test_headline_states_strict_closed_book_base_tuned_rag_ratio_gain_and_forgetting():
    rows = rep.summary(SCORES, MODELS, n_boot=50)
    head = rep.headline(rows, ["sft", "dpo"])
    assert head == {"metric": "strict", "model": "dpo", "closed_book": 0.75, "base": 0.25, "tuned+rag": 1.0,
                    "base+rag": 0.75, "of_tuned_rag": 0.75, "gain_points": 50.0, "forgetting_points": 50.0,
                    "forgetting_f1_points": 50.0, "forgetting_loss_delta": pytest.approx(0.15)}
    closed = rep.closed_book(rows, ["sft", "dpo"])
    assert closed["sft"]["strict"] == {"tuned": 0.5, "base": 0.25, "base+rag": 0.75, "tuned+rag": None,
                                       "of_rag": pytest.approx(0.6667, abs=1e-4), "of_tuned_rag": None}
    md = "\n".join(rep.headline_text(head))
    assert "**dpo** closed-book strict accuracy 0.750" in md and "(+50.0 points)" in md
    assert "closed-book is **75% of dpo+RAG**" in md and "+50.0 points strict" in md
    assert rep.headline(rows, []) == {}


def test_per_fact_marks_each_models_strictly_right_items_and_skips_general_ones():
    items = [Item("d1", "domain", "Port of Foo?", "7420", [], fact_ids=["foo.port"]),
             Item("u2", "user", "Replicas and port?", "3, 7420", [], fact_ids=["foo.rep", "foo.port"]),
             Item("g1", "general", "Hello?", "Hi", [])]
    table = rep.per_fact(SCORES, items, MODELS)
    assert table == [
        {"item_id": "d1", "question": "Port of Foo?", "reference": "7420", "fact_ids": "foo.port", "base": 1, "sft": 1,
         "dpo": 1, "base+rag": 1, "dpo+rag": 1},
        {"item_id": "u2", "question": "Replicas and port?", "reference": "3, 7420", "fact_ids": "foo.rep, foo.port",
         "base": 0, "sft": 0, "dpo": 0, "base+rag": 0, "dpo+rag": 1}]
    md = rep.markdown(rep.summary(SCORES, MODELS, n_boot=20), {}, [], [], [], None, facts=table, models=MODELS)
    assert "Known: base 1/2, sft 1/2, dpo 1/2, base+rag 1/2, dpo+rag 2/2." in md


def test_flags_are_counted_per_model_and_in_the_table():
    scores = [_s("sft", "d1", "domain", 0.0, 1.0, "echo"), _s("sft", "d2", "domain", 0.0, 0.0, "repeat"),
              _s("sft", "d3", "domain", 0.0, 0.0, "echo"), _s("base", "d1", "domain", 0.0, 0.0)]
    assert rep.flag_counts(scores, ["base", "sft"]) == {"base": {"empty": 0, "echo": 0, "repeat": 0},
                                                        "sft": {"empty": 0, "echo": 2, "repeat": 1}}
    rows = rep.summary(scores, ["base", "sft"], n_boot=20)
    assert [r["flagged"] for r in rows] == [0, 3]
