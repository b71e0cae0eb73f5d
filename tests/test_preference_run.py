"""The preference step's work without a flow: replies sampled per model and kept in the memo (a failed request is
asked again, a kept reply never is), and run_preference from training rows to pairs, samples, exports and report."""
from __future__ import annotations

import json
from pathlib import Path

from infuse.operators.llm import ChatResult, LLMConfig
from infuse.operators.preference.config import PreferenceConfig
from infuse.operators.preference.pairs import Prompt
from infuse.operators.preference.run import run_preference
from infuse.operators.preference.sampling import ReplyModel, sample_replies

QUESTION = [{"role": "user", "content": "Which error code does lotus_get return for an I/O error?"}]
REFERENCE = "For an I/O error lotus_get returns LOTUS_EIO, whose code is -5."
SOURCE = "Error codes. LOTUS_EIO (-5): an I/O error. LOTUS_EINVAL (-22): a bad argument."
OPENAI = LLMConfig(backend="openai", model="served", base_url="http://127.0.0.1:9/v1", batch_size=2, concurrency=1)


class DictMemo:
    """An item memo in memory, counting as ItemMemo does."""

    def __init__(self) -> None:
        self.kept: dict[str, object] = {}
        self.hits = self.misses = 0

    def get(self, key: str):
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


class Bar:
    def __init__(self, total: int, desc: str, unit: str) -> None:
        self.total, self.done = total, 0

    def update(self, n: int = 1) -> None:
        self.done += n

    def __enter__(self) -> "Bar":
        return self

    def __exit__(self, *_) -> None:
        assert self.done == self.total


class Scripted:
    """A backend whose reply to `<sample_id>#<k>` is REPLIES[k]; a request it is told to fail, fails."""

    REPLIES = ["The code is -4.", "It returns -5.", "LOTUS_EIO is -7, I believe."]
    asked: list[list[str]] = []
    failing: set[str] = set()

    def __init__(self, llm: LLMConfig) -> None:
        assert llm.model == "served"

    def generate(self, requests):
        Scripted.asked.append([r.id for r in requests])
        return [ChatResult(r.id, error="boom") if r.id in Scripted.failing else
                ChatResult(r.id, Scripted.REPLIES[int(r.id.rsplit("#", 1)[1])], finish_reason="stop")
                for r in requests]


def _prompt(sid: str) -> Prompt:
    """A fact question of its own (a reply is kept by its prompt's text and k, not by sample_id)."""
    question = [{"role": "user", "content": f"{QUESTION[0]['content']} ({sid})"}]
    return Prompt(sid, question, REFERENCE, SOURCE, short="-5", aliases=["minus 5"], fact_id="f-eio")


def test_a_kept_reply_is_never_asked_again_and_a_failed_one_is():
    cfg = PreferenceConfig(samples_per_prompt=3, llm=OPENAI)
    model, memo = ReplyModel("sft", OPENAI, "sha-sft"), DictMemo()
    Scripted.asked, Scripted.failing = [], {"p1#2"}
    first = sample_replies([_prompt("p1"), _prompt("p2")], model, cfg, memo, Bar, Scripted)
    assert Scripted.asked == [["p1#0", "p1#1"], ["p1#2", "p2#0"], ["p2#1", "p2#2"]], "batches of max(batch, conc.)"
    assert [(c.sample_id, c.k, c.text, c.error) for c in first][:3] == [
        ("p1", 0, "The code is -4.", None), ("p1", 1, "It returns -5.", None), ("p1", 2, None, "boom")]
    assert len(memo.kept) == 5, "the failed request is not kept"
    Scripted.asked, Scripted.failing = [], set()
    again = sample_replies([_prompt("p1"), _prompt("p2"), _prompt("p3")], model, cfg, memo, Bar, Scripted)
    assert Scripted.asked == [["p1#2", "p3#0"], ["p3#1", "p3#2"]], "only what the memo lacks"
    assert [c.text for c in again] == Scripted.REPLIES * 3
    other = sample_replies([_prompt("p1")], ReplyModel("base", OPENAI, "sha-sft"), cfg, DictMemo(), Bar, Scripted)
    assert [c.model for c in other] == ["base"] * 3
    Scripted.asked = []
    sample_replies([_prompt("p1")], ReplyModel("sft", OPENAI, "sha-other"), cfg, memo, Bar, Scripted)
    assert Scripted.asked == [["p1#0", "p1#1"], ["p1#2"]], "another SFT model: none of the kept replies are its"


def test_run_preference_makes_pairs_then_user_pairs_and_exports_them(tmp_path):
    rows = [{"sample_id": f"s{i}", "kind": "domain", "chunk_id": "c1", "lang": "en",
             "meta": json.dumps({"fact_id": "f-eio", "short": "-5", "aliases": ["minus 5"]}),
             "messages": [{"role": "user", "content": f"Question {i}: which code is an I/O error?"},
                          {"role": "assistant", "content": REFERENCE}]} for i in range(3)]
    rows.append({**rows[0], "sample_id": "g", "kind": "general"})
    evals = [{"messages": rows[2]["messages"]}]
    user = tmp_path / "mine.jsonl"
    user.write_text('{"prompt": "Hi", "chosen": "Hello.", "rejected": "Go away."}\n{"prompt": "Hi"}\n')
    cfg = PreferenceConfig(samples_per_prompt=2, llm=OPENAI, user_data=[str(user)], exports=["openai"])
    memos: dict[str, DictMemo] = {}
    Scripted.asked, Scripted.failing = [], set()
    res = run_preference(rows, evals, {"c1": SOURCE}, cfg, [ReplyModel("sft", OPENAI, "sha")],
                         lambda name: memos.setdefault(name, DictMemo()), Bar, tmp_path / "out", Scripted)
    assert [p["pair_id"] for p in res.pairs] == ["s0:sft:0", "s1:sft:0", "user:mine.jsonl:1"]
    assert [p["rejected"] for p in res.pairs[:2]] == ["The code is -4."] * 2
    assert [(s["sample_id"], s["k"], s["verdict"]) for s in res.samples] == [
        ("s0", 0, "used"), ("s0", 1, "correct"), ("s1", 0, "used"), ("s1", 1, "correct")]
    assert {(r.id, r.reason) for r in res.rejects} == {("s2", "eval_prompt"), ("user:mine.jsonl:2", "malformed_pair")}
    exported = [json.loads(x) for x in Path(tmp_path / "out" / "openai" / "train.jsonl").read_text().splitlines()]
    assert [x["non_preferred_output"][0]["content"] for x in exported] == [p["rejected"] for p in res.pairs]
    assert res.exports == {"openai/train.jsonl": 3}
    rep = res.report
    assert (rep.rows_in, rep.kept) == (2 + 1 + 1, 3)
    assert rep.stats["sample_memo"] == {"sft": {"memo_hits": 0, "memo_misses": 4}}
    assert rep.stats["replies"] == {"used": 2, "correct": 2} and rep.stats["user_pairs"] == 1
    assert "**2 generated pairs** (2 with a reply that fails the strict score as rejected) and 1 user pairs" in \
        rep.markdown
