"""A stand-in for the data steps and mix in the evaluate tests: `train`, `eval` (SFT_SCHEMA) and `chunks` from a
JSON file ({"rows": [...], "chunks": [{"chunk_id", "doc_id", "text"}]}), loaded through a recipe's `plugins:`.
It has no stage: it reads nothing, so it goes first."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infuse.operators.common.dataset import SFT_SCHEMA
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, table


class EvalRowsOptions(StepOptions):
    path: str = ""


class EvalRows(Step):
    name = "evalrows"
    description = "train/eval rows and chunks from a JSON file (tests)"
    outputs = {"train": table(SFT_SCHEMA), "eval": table(SFT_SCHEMA), "chunks": table()}
    Options = EvalRowsOptions

    def fingerprint(self, cfg: dict[str, Any]) -> dict[str, Any]:
        return {"data": Path(cfg["path"]).read_text(encoding="utf-8")}

    def run(self, ctx: StepContext) -> StepOutput:
        data = json.loads(Path(ctx.options.path).read_text(encoding="utf-8"))
        rows = data["rows"]
        chunks = data.get("chunks") or [{"chunk_id": "none", "doc_id": "none", "text": "nothing"}]
        out = {"train": ctx.write_table("train", [r for r in rows if r["split"] == "train"]),
               "eval": ctx.write_table("eval", [r for r in rows if r["split"] == "eval"]),
               "chunks": ctx.write_table("chunks", chunks)}
        return StepOutput(out, report=StepReport(rows_in=len(rows), kept=len(rows)))
