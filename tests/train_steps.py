"""A stand-in for `mix` in the training tests: writes `train` and `eval` (SFT_SCHEMA) from a JSONL file.

Loaded through a recipe's `plugins:`; every data step before it is turned off,
so a flow test runs just this, sft and merge on a tiny model. It has no stage:
it reads nothing, so it goes first.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infuse.operators.common.dataset import SFT_SCHEMA
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, table


class RowsOptions(StepOptions):
    path: str = ""


class Rows(Step):
    name = "rows"
    description = "train/eval rows from a JSONL file (tests)"
    outputs = {"train": table(SFT_SCHEMA), "eval": table(SFT_SCHEMA)}
    Options = RowsOptions

    def fingerprint(self, cfg: dict[str, Any]) -> dict[str, Any]:
        return {"rows": Path(cfg["path"]).read_text(encoding="utf-8")}

    def run(self, ctx: StepContext) -> StepOutput:
        rows = [json.loads(line) for line in Path(ctx.options.path).read_text(encoding="utf-8").splitlines()]
        train = [r for r in rows if r["split"] == "train"]
        evals = [r for r in rows if r["split"] == "eval"]
        return StepOutput({"train": ctx.write_table("train", train), "eval": ctx.write_table("eval", evals)},
                          report=StepReport(rows_in=len(rows), kept=len(rows)))
