"""The strict score and the echo/repeat flag of evaluate (operators/evaluate/metrics.py), on hand-written answers.

Strict must not reward a wrong detail (the containment score gave credit for `LOTUS_EIO (-4)` against
`LOTUS_EIO (-5)` and for a bare "2" inside an unrelated sentence), yet must accept a correct answer restated in
a full sentence, in English and Chinese.
"""
from __future__ import annotations

import pytest

from infuse.operators.evaluate.metrics import degenerate, keys, score, strict, strict_detail


@pytest.mark.parametrize("pred, ref, why", [
    ("LOTUS_EIO (-4)", "LOTUS_EIO (-5)", "a wrong number where the reference's belongs"),
    ("The call returns LOTUS_EBUSY.", "LOTUS_EIO", "a wrong code of the same family"),
    ("It keeps 150 snapshots.", "15", "the number inside a bigger number"),
    ("The error is -50.", "-5", "a negative number inside a bigger one"),
    ("The error is 5.", "-5", "the sign dropped"),
    ("Version 2 supports 16 nodes and 4 replicas.", "2", "a bare digit in an unrelated sentence"),
    ("The cache is 512 KB.", "512MB", "the same number with another unit"),
    ("超时为30秒或60秒。", "30秒", "a hedge between two values of the kind"),
    ("发布于2023年6月1日。", "2023-05-01", "another date"),
    ("The version is 2.3.2.", "2.3.1", "another version"),
    ("I do not know.", "Marta Kowalczyk", "a name not stated"),
])
def test_strict_rejects_a_wrong_detail(pred, ref, why):
    assert strict(pred, ref) == 0.0, why


def test_strict_says_what_is_missing_and_what_conflicts():
    d = strict_detail("LOTUS_EIO (-4)", "LOTUS_EIO (-5)")
    assert d == {"ok": False, "missing": ["-5"], "conflicting": ["-4"], "keys": ["lotus_eio", "-5"]}
    assert strict_detail("Version 2 supports 16 nodes and 4 replicas", "2")["conflicting"] == ["16node", "4replica"]


@pytest.mark.parametrize("pred, ref, aliases, question", [
    ("The default port of Foo is 7420.", "7420", None, "What is the default port of Foo?"),
    ("Foo 的默认端口是 7420。", "7420", None, "Foo 的默认端口是多少？"),
    ("LOTUS_EIO (-5) means an I/O error.", "LOTUS_EIO (-5)", None, ""),
    ("The cache is 512 MB.", "512MB", None, "How big is the cache?"),
    ("连接超时默认为30秒，最多重试3次。", "30秒", None, "连接超时默认是多少？"),  # 3次 counts times, not seconds
    ("When the timeout is 30 seconds, the retry limit is 5.", "5", None,
     "What is the retry limit when the timeout is 30 seconds?"),  # 30 is the question's, not a rival
    ("It was written by Marta Kowalczyk in Gdansk.", "Marta Kowalczyk", None, ""),
    ("负责人是张伟。", "张伟", None, "负责人是谁？"),
    ("It listens on port 7,420.", "7420", None, ""),
    ("Writes are synced every 200 ms.", "200毫秒", ["200 ms"], ""),
    ("It uses one thousand and twenty four pages.", "1024", ["one thousand and twenty four"], ""),
    ("The SKU is SKU-4471.", "4471", None, ""),
    ("It is -5.", "LOTUS_EIO (-5)", None, "Which value does LOTUS_EIO have?"),  # the asked code need not recur
    ("Released on 2023年5月1日.", "2023-05-01", None, ""),
])
def test_strict_accepts_correct_full_sentences_and_aliases(pred, ref, aliases, question):
    d = strict_detail(pred, ref, aliases, question)
    assert d["ok"], d


def test_keys_are_numbers_dates_and_codes_only():
    shown = [k.value for k in keys("lotus_open returns LOTUS_EIO (-5) after 30 s on LotusDB 2.3.1, see "
                                   "/etc/lotus.conf, ops@lotus.example.com and copy-on-write since 2021-03-04")]
    assert shown == ["lotus_open", "lotus_eio", "-5", "30", "lotusdb", "2.3.1", "/etc/lotus.conf",
                     "ops@lotus.example.com", "2021-03-04"]
    assert keys("Marta Kowalczyk") == [] and keys("张伟") == []


def test_score_puts_strict_beside_contains_and_f1():
    s = score("LOTUS_EIO (-4)", "LOTUS_EIO (-5)")
    assert s["strict"] == 0.0 and s["contains"] == 0.0 and 0 < s["f1"] < 1
    s = score("It is LOTUS_EIO (-5).", "LOTUS_EIO (-5)")
    assert s["strict"] == 1.0 and s["contains"] == 1.0


# ---- the echo / repeat flag ----------------------------------------------------------------------------------

@pytest.mark.parametrize("answer, question, flag", [
    ("", "What is the port?", "empty"),
    ("  \n ", "What is the port?", "empty"),
    ("?!。", "What is the port?", "empty"),
    ("lotus_open的备注是什么？ mendatang lotus_open的备注是什么？ mendatang lotus_open的备注是什么？ mendatang",
     "lotus_open的备注是什么？", "echo"),
    ("What is the default port of Foo?", "What is the default port of Foo?", "echo"),
    ("| | | | | | | | | | | | | | | | | | | |", "lotus_open的备注是什么？", "repeat"),
    ("the port is the port is the port is the port is the port is the port is the port is", "Which port?",
     "repeat"),
    ("好好好好好", "对吗？", "repeat"),
])
def test_degenerate_flags_empty_echo_and_repeat(answer, question, flag):
    assert degenerate(answer, question) == flag


@pytest.mark.parametrize("answer, question", [
    ("The default port of Foo is 7420.", "What is the default port of Foo?"),
    ("LotusDB 的默认端口是 7420。", "LotusDB 的默认端口是什么？"),
    ("LotusDB 运维手册中 WAL 的默认同步间隔是 200 毫秒。", "LotusDB 运维手册中 WAL 的默认同步间隔是多少？"),
    ("7420", "What is the port?"),
    ("Yes, yes.", "Is it on?"),
])
def test_degenerate_leaves_a_normal_answer_unflagged(answer, question):
    assert degenerate(answer, question) is None


def test_first_pass_scores_what_the_model_said_before_its_loop():
    from infuse.operators.evaluate.metrics import first_pass

    looped = "The value of LOTUS_ENOTFOUND is -2. The value of LOTUS_ENOTFOUND is -2. The value"
    assert first_pass(looped) == "The value of LOTUS_ENOTFOUND is -2."
    assert strict(first_pass(looped), "-2") == 1.0
    junk = "LOTUS_ECONFLICT的含义是Transaction conflict。parsedBlock LOTUS_ECONFLICT的含义是Transaction conflict。"
    assert first_pass(junk) == "LOTUS_ECONFLICT的含义是Transaction conflict。"
    # a later sentence that adds a rival value is not a repeat: it stays, and strict fails it
    hedge = "It is 5. It is 5 or 6."
    assert first_pass(hedge) == hedge and strict(hedge, "5") == 0.0
    # a wrong value in a loop after the first pass does not count; the first pass decides
    assert strict(first_pass("X is -5. X is -5. X is -4."), "-5") == 1.0
