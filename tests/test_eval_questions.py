"""evaluate's question set: paraphrases that are no question, the source again or the prompt's placeholder are
rejected with a reason; fact rows (synthesis' `meta.short`) are asked for their short answer, and the
"describe section X" rows beside them are left out (`not_a_fact`); the user's file carries fact ids.

Paraphrases go through the openai backend to a real local HTTP server (tests/faulty_server.py, no faults)
scripted to answer like the small model of the demo did.
"""
from __future__ import annotations

import json

import pytest
from faulty_server import FaultyServer

from infuse.operators.evaluate.questions import Item, from_eval_rows, paraphrase, read_user_questions, variant_problem

SOURCE = "LotusDB 的默认端口是什么？"


@pytest.mark.parametrize("variant, reason", [
    ("修改后的问题", "paraphrase_placeholder"),  # the demo's kept placeholder
    ("改写后的问题", "paraphrase_placeholder"),  # the zh prompt's format example
    ("Rewritten question?", "paraphrase_placeholder"),  # the en prompt's, with a question mark
    ("the modified question", "paraphrase_placeholder"),
    ("新问题", "paraphrase_placeholder"),
    ("{{question}} 是多少？", "paraphrase_placeholder"),
    ("LotusDB的默认端口是什么?", "paraphrase_same"),  # only spacing and punctuation changed
    ("LotusDB 的 默认 端口 是 什么 呢？", "paraphrase_same"),  # token Jaccard >= 0.9
    ("LotusDB 的默认端口是 7420。", "paraphrase_not_question"),  # an answer
    ("Describe the default port of LotusDB.", "paraphrase_not_question"),
    ("LotusDB 默认监听哪个端口？", None),
    ("Which port does LotusDB listen on by default", None),
    ("请问 LotusDB 默认使用的端口号", "paraphrase_not_question"),
])
def test_variant_problem_names_why_a_variant_cannot_be_asked(variant, reason):
    assert variant_problem(variant, SOURCE) == reason


def test_a_variant_equal_to_an_earlier_one_is_the_same():
    assert variant_problem("LotusDB 默认监听哪个端口？", SOURCE, ["LotusDB默认监听哪个端口?"]) == "paraphrase_same"


def test_paraphrase_rejects_placeholders_and_echoes_with_reasons_through_a_local_server():
    """The reply of the demo's small model (`修改后的问题`) is a reject, not a question; so are the source again
    and an answer. A good variant is kept with the item's short reference, aliases and fact ids."""
    replies = {
        "端口": [{"question": "修改后的问题"}, {"question": SOURCE, "answer": "x"},
                 {"question": "默认端口是7420。", "answer": "y"}, {"question": "LotusDB 默认监听哪个端口？", "answer": "z"}],
        "副本": [{"question": "修改后的问题", "answer": "修改后的答案"}],
    }

    def content(body: dict) -> str:
        last = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        return json.dumps(next(v for k, v in replies.items() if k in last), ensure_ascii=False)

    items = [Item("domain:a", "domain", SOURCE, "7420", [{"role": "user", "content": SOURCE}], aliases=["七四二零"],
                  sample_id="a", lang="zh", fact_ids=["f-port"], long_reference="LotusDB 的默认端口是 7420。"),
             Item("domain:b", "domain", "LotusDB 默认几个副本？", "3", [{"role": "user", "content": "LotusDB 默认几个副本？"}],
                  sample_id="b", lang="zh", fact_ids=["f-rep"])]
    from infuse.operators.llm import make_backend

    with FaultyServer(fail_rate=0.0, content_fn=content) as srv:
        backend = make_backend({"backend": "openai", "base_url": srv.base_url, "model": "m", "max_retries": 0})
        out, rejects = paraphrase(items, backend, k=2)
    assert [(p.question, p.reference, p.aliases, p.fact_ids, p.parent_id) for p in out] == [
        ("LotusDB 默认监听哪个端口？", "7420", ["七四二零"], ["f-port"], "domain:a")]
    assert [(r.id, r.reason, r.detail.get("variant")) for r in rejects] == [
        ("a", "paraphrase_placeholder", "修改后的问题"), ("a", "paraphrase_same", SOURCE),
        ("a", "paraphrase_not_question", "默认端口是7420。"), ("b", "paraphrase_placeholder", "修改后的问题")]


# ---- fact rows -------------------------------------------------------------------------------------------------

def _row(sid: str, q: str, a: str, meta: dict | None = None, kind: str = "domain") -> dict:
    return {"sample_id": sid, "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
            "source": "domain" if kind != "general" else "gen", "kind": kind, "doc_id": "ops.md", "chunk_id": "c",
            "span_start": None, "span_end": None, "lang": "en", "split": "eval",
            **({"meta": json.dumps(meta)} if meta is not None else {})}


def test_fact_rows_are_asked_for_their_short_answer_and_passages_beside_them_are_not_a_fact():
    rows = [_row("f1", "Which port does Foo use by default?", "Foo listens on port 7420 by default.",
                 {"fact_id": "foo.port", "short": "7420", "aliases": ["7,420"], "heldout": True}),
            _row("s1", "Describe the Capacity Planning section.", "Capacity planning starts with ... " * 10),
            _row("s2", "What does the ops manual say?", "Lots.", {"strategy": "section"}),  # meta without short
            _row("g1", "Say hello.", "Hello!", kind="general")]
    items, rejects = from_eval_rows(rows, max_domain=10, max_general=10)
    fact = next(i for i in items if i.group == "domain")
    assert (fact.reference, fact.aliases, fact.fact_ids, fact.long_reference) == (
        "7420", ["7,420"], ["foo.port"], "Foo listens on port 7420 by default.")
    assert [i.item_id for i in items] == ["domain:f1", "general:g1"]
    assert sorted((r.id, r.reason) for r in rejects) == [("s1", "not_a_fact"), ("s2", "not_a_fact")]


def test_without_fact_rows_the_domain_rows_stay_as_they_were():
    rows = [_row("s1", "Describe the Capacity Planning section.", "Capacity planning starts with sizing."),
            _row("s2", "What does the ops manual say?", "Lots.", {"strategy": "section"})]
    items, rejects = from_eval_rows(rows, max_domain=10, max_general=10)
    assert sorted(i.reference for i in items) == ["Capacity planning starts with sizing.", "Lots."]
    assert rejects == [] and all(i.fact_ids == [] and i.long_reference == "" for i in items)


def test_user_questions_carry_their_fact_ids(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"question": "Foo's port?", "answer": "7420", "fact": "foo.port"},
        {"question": "Port and replicas of Foo?", "answer": "7420, 3", "facts": ["foo.port", "foo.replicas"]},
        {"question": "Who runs Foo?", "answer": "Marta Kowalczyk"},
        {"question": "Bad?", "answer": "x", "facts": {"not": "a list"}}]), encoding="utf-8")
    items, rejects = read_user_questions(path)
    assert [i.fact_ids for i in items] == [["foo.port"], ["foo.port", "foo.replicas"], []]
    assert [(r.id, r.reason) for r in rejects] == [("mine.jsonl#4", "malformed_row")]
