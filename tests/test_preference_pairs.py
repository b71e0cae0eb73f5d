"""Preference pairs that teach facts: for a question with a gold short answer, a reply that fails the strict score is
the rejected side and the reference answer the chosen one; a correct reply makes no pair; a reply cut off before
stating any value is dropped, one cut off after stating a wrong value is kept."""
from __future__ import annotations

import json

from infuse.operators.evaluate.metrics import strict
from infuse.operators.preference import Candidate, PairOptions, Prompt, build_pairs, prompts_from_rows
from infuse.operators.preference.pairs import choose_prompts, sample_rows

QUESTION = [{"role": "user", "content": "Which error code does lotus_get return for an I/O error?"}]
REFERENCE = "For an I/O error lotus_get returns LOTUS_EIO, whose code is -5."
SOURCE = "Error codes. LOTUS_EIO (-5): an I/O error. LOTUS_EINVAL (-22): a bad argument."


def _fact(sid: str) -> Prompt:
    return Prompt(sid, QUESTION, REFERENCE, SOURCE, short="-5", aliases=["minus 5"], fact_id="f-eio")


def _verdicts(cands: list[Candidate]) -> list[str]:
    return [c.verdict for c in cands]


def test_a_reply_that_fails_the_strict_score_is_rejected_and_the_reference_chosen():
    wrong = Candidate("a", "sft", 0, "The code is -4.")
    right = Candidate("a", "sft", 1, "It returns -5.")
    pairs, rejects = build_pairs([_fact("a")], [wrong, right], PairOptions())
    assert not rejects and len(pairs) == 1
    pair = pairs[0]
    assert strict(pair["rejected"], "-5", ["minus 5"]) == 0.0 and strict(pair["chosen"], "-5", ["minus 5"]) == 1.0
    assert (pair["chosen"], pair["rejected"], pair["prompt"]) == (REFERENCE, "The code is -4.", QUESTION)
    assert (pair["fact_id"], pair["rejected_strict"], pair["rejected_from"]) == ("f-eio", 0.0, "sft")
    assert _verdicts([wrong, right]) == ["used", "correct"]


def test_a_wrong_reply_close_to_the_reference_is_still_rejected():
    """The fluency rule would call it near-identical; for a fact it is the most useful pair: one detail apart."""
    close = Candidate("a", "sft", 0, "For an I/O error lotus_get returns LOTUS_EIO, whose code is -4.")
    pairs, _ = build_pairs([_fact("a")], [close], PairOptions())
    assert [p["rejected"] for p in pairs] == [close.text] and close.verdict == "used"


def test_only_correct_replies_make_no_pair():
    cands = [Candidate("b", "sft", k, t) for k, t in enumerate(["It returns -5.", "LOTUS_EIO, that is -5.",
                                                                 "minus 5"])]
    pairs, rejects = build_pairs([_fact("b")], cands, PairOptions())
    assert pairs == [] and [(r.id, r.reason) for r in rejects] == [("b", "rejected_correct")]
    assert _verdicts(cands) == ["correct"] * 3
    assert [r["strict"] for r in sample_rows(cands)] == [1.0, 1.0, 1.0]


def test_a_truncated_reply_counts_only_once_it_states_a_wrong_value():
    no_value = Candidate("c", "sft", 0, "Let me think about which error code lotus_get", finish_reason="length")
    pairs, rejects = build_pairs([_fact("c")], [no_value], PairOptions())
    assert pairs == [] and [r.reason for r in rejects] == ["rejected_truncated"] and no_value.verdict == "truncated"

    stated = Candidate("d", "sft", 0, "The code is -4, which means that the disk", finish_reason="length")
    pairs, rejects = build_pairs([_fact("d")], [stated], PairOptions())
    assert not rejects and [p["rejected"] for p in pairs] == [stated.text] and stated.verdict == "used"


def test_a_confidently_wrong_reply_is_preferred_to_a_vague_one():
    vague = Candidate("e", "sft", 0, "It is an error code that the library returns when reading fails badly.")
    wrong = Candidate("e", "sft", 1, "The code is -4.")
    pairs, _ = build_pairs([_fact("e")], [vague, wrong], PairOptions())
    assert [p["rejected"] for p in pairs] == ["The code is -4."]
    assert _verdicts([vague, wrong]) == ["usable", "used"]


def _row(sid: str, meta: dict | str | None, answer: str = REFERENCE, chunk: str = "c1") -> dict:
    return {"sample_id": sid, "kind": "domain", "chunk_id": chunk, "lang": "en", "meta": meta,
            "messages": QUESTION + [{"role": "assistant", "content": answer}]}


def test_knowledge_rows_carry_their_gold_answer_into_the_prompt():
    fact = {"fact_id": "f-eio", "short": "-5", "aliases": ["minus 5"], "heldout": False}
    rows = [_row("k1", json.dumps(fact)), _row("k2", {**fact, "heldout": True}),
            _row("k3", json.dumps(fact), answer="LOTUS_EIO is an I/O error."),
            _row("k4", json.dumps(fact), chunk="gone"), _row("plain", "", chunk="gone"), _row("plain2", None)]
    prompts, rejects = prompts_from_rows(rows, {"c1": SOURCE}, [])
    assert [(p.sample_id, p.short, p.aliases, p.fact_id) for p in prompts] == [
        ("k1", "-5", ["minus 5"], "f-eio"), ("k2", "-5", ["minus 5"], "f-eio"), ("k4", "-5", ["minus 5"], "f-eio"),
        ("plain2", "", [], "")]
    assert {r.id: r.reason for r in rejects} == {"k3": "reference_not_strict", "plain": "no_source"}


def test_under_a_cap_fact_questions_are_taken_first():
    facts = [_fact(f"f{i}") for i in range(3)]
    others = [Prompt(f"o{i}", QUESTION, REFERENCE, SOURCE) for i in range(5)]
    assert [p.sample_id for p in choose_prompts(others + facts, 4, seed=1)][:3] == ["f0", "f1", "f2"]
    assert {p.sample_id for p in choose_prompts(others + facts, 2, seed=1)} <= {"f0", "f1", "f2"}
    assert len(choose_prompts(others + facts, 4, seed=1)) == 4

