"""qa_filter's check contract: the registry, which checks a config runs and in what order, a check's stats."""
from __future__ import annotations

import pyarrow as pa
import pytest

from infuse.operators.qa_filter import (CHECKS, Check, CheckContext, Drop, QAFilterConfig, SampleCheck,
                                        filter_samples)
from infuse.operators.qa_filter.check import planned
from infuse.operators.synthesize import QA_SCHEMA

BUILT_IN = ["form", "language", "dedup", "length_outlier", "grounding", "citation"]
SOURCE = "Backups run nightly at 02:00 and keep seven copies; a weekly full backup runs on Sunday."


def row(sid: str, answer: str, question: str | None = None) -> dict:
    return {"sample_id": sid, "messages": [{"role": "user", "content": question or f"What about {sid}?"},
                                           {"role": "assistant", "content": answer}],
            "chunk_id": "c1", "source_chunk_ids": ["c1"], "strategy": "qa", "lang": "en"}


def table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=QA_SCHEMA)


class Shouting(SampleCheck):
    """A test check: an answer in capitals goes."""

    name = "shouting"
    order = 15  # between form and language

    def check(self, s):
        return Drop("shouting", "answer in capitals") if s.pairs[0][1].isupper() else None


def names(cfg: QAFilterConfig, backend=None) -> list[str]:
    return [c.name for c in planned(CheckContext(cfg, backend=backend))]


def test_the_config_decides_which_checks_run_in_order():
    assert names(QAFilterConfig()) == BUILT_IN
    assert names(QAFilterConfig(judge={"enabled": True})) == BUILT_IN, "no backend: no judge"
    assert names(QAFilterConfig(judge={"enabled": True}), backend=object()) == BUILT_IN + ["judge"]
    assert names(QAFilterConfig(dedup=False, language={"enabled": False}, grounding={"enabled": False})) == \
        ["form", "length_outlier", "citation"]
    assert names(QAFilterConfig(extra_checks=["shouting"])) == ["form", "shouting", *BUILT_IN[1:]]


def test_extra_check_runs_only_when_named_and_counts():
    rows = [row("calm", SOURCE), row("loud", SOURCE.upper()), row("tiny", "ok")]
    result = filter_samples(table(rows), {"c1": SOURCE}, QAFilterConfig(grounding={"enabled": False}))
    assert result.kept.column("sample_id").to_pylist() == ["calm", "loud"]
    result = filter_samples(table(rows), {"c1": SOURCE},
                            QAFilterConfig(grounding={"enabled": False}, extra_checks=["shouting"]))
    assert [(r.id, r.reason, r.message) for r in result.rejects] == [("tiny", "answer_too_short",
                                                                      "answer has 2 chars, floor 8"),
                                                                     ("loud", "shouting", "answer in capitals")]
    assert result.kept.column("sample_id").to_pylist() == ["calm"]
    assert result.stats["form"] == {"in": 3, "dropped": 1, "cut": 0}
    assert result.stats["shouting"] == {"in": 2, "dropped": 1, "cut": 0}
    assert result.stats["length_outlier"]["skipped"].startswith("1 samples < min_rows_for_sigma")


def test_unknown_extra_check_is_a_problem_and_an_error():
    from infuse.tasks.qa_filter import QAFilter

    problems = QAFilter().check({"extra_checks": ["nope", "shouting"]})
    assert len(problems) == 1 and problems[0].startswith("extra_checks: no check named 'nope'")
    with pytest.raises(KeyError, match="nope"):
        filter_samples(table([row("a", SOURCE)]), {"c1": SOURCE}, QAFilterConfig(extra_checks=["nope"]))


def test_a_name_is_one_check():
    with pytest.raises(ValueError, match="defined twice"):
        type("Other", (SampleCheck,), {"name": "form", "__module__": "elsewhere", "check": lambda self, s: None})
    assert CHECKS["form"].__module__ == "infuse.operators.qa_filter.checks.form"


def test_a_check_must_give_one_verdict_per_sample():
    class Short(Check):
        name = "short_of_verdicts"

        def verdicts(self, samples):
            return []

    try:
        with pytest.raises(ValueError, match="0 verdicts for 1 samples"):
            filter_samples(table([row("a", SOURCE)]), {"c1": SOURCE}, QAFilterConfig(extra_checks=[Short.name]))
    finally:
        del CHECKS[Short.name]


def test_a_plugin_checks_code_is_in_the_step_key(tmp_path):
    from infuse.tasks.framework.step import load_plugin
    from infuse.tasks.qa_filter import QAFilter

    plugin = tmp_path / "my_checks.py"
    plugin.write_text("from infuse.operators.qa_filter import SampleCheck\n\n\n"
                      "class Mine(SampleCheck):\n    name = 'mine'\n\n    def check(self, s):\n        return None\n")
    load_plugin(str(plugin))
    try:
        step, cfg = QAFilter(), {"extra_checks": ["mine"]}
        assert step.fingerprint({}) == {}
        before = step.fingerprint(cfg)
        plugin.write_text(plugin.read_text() + "# edited: a new version of the check\n")
        assert step.fingerprint(cfg) != before, "editing the plug-in check changes qa_filter's key"
    finally:
        del CHECKS["mine"]
