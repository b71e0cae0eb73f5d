"""A step of the tests' own that writes a `qa` table from a JSON Lines file, so the mix step can run in a
real flow on a small, known QA set without parsing or synthesis."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from infuse.operators.common.jsonl import read_jsonl
from infuse.operators.synthesize import QA_SCHEMA
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, table


class QASourceOptions(StepOptions):
    path: str = ""


class QASource(Step):
    name = "qa_source"
    stage = 65
    description = "read QA rows from a JSON Lines file (tests)"
    outputs = {"qa": table(QA_SCHEMA)}
    Options = QASourceOptions

    def fingerprint(self, cfg: dict[str, Any]) -> dict[str, Any]:
        return {"file": hashlib.sha256(Path(cfg["path"]).read_bytes()).hexdigest()}

    def run(self, ctx: StepContext) -> StepOutput:
        lines = read_jsonl(ctx.options.path)
        bad = next((line for line in lines if not line.ok), None)
        if bad is not None:  # a test's own fixture: a broken line is a bug in the test, not a reject
            raise ValueError(f"{ctx.options.path} line {bad.number}: {bad.message}")
        rows = [line.value for line in lines]
        full = [{name: r.get(name) for name in QA_SCHEMA.names} for r in rows]
        out = ctx.write_table("qa", full)
        return StepOutput({"qa": out}, report=StepReport(rows_in=len(rows), kept=len(rows)))
