"""A stand-in for the data half in the alignment tests: `train`, `eval` (SFT_SCHEMA) and `chunks` from JSONL files.

Loaded through a recipe's `plugins:`; every data step before it is turned off,
so a flow test runs just this, sft, preference, dpo and merge on a tiny model.
It has no stage: it reads nothing, so it goes first.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from infuse.operators.common.dataset import SFT_SCHEMA
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, table

CHUNKS = pa.schema([("chunk_id", pa.string()), ("doc_id", pa.string()), ("text", pa.string())])


class CorpusOptions(StepOptions):
    rows: str = ""
    chunks: str = ""


class Corpus(Step):
    name = "corpus"
    description = "train/eval rows and their chunks from JSONL files (tests)"
    outputs = {"train": table(SFT_SCHEMA), "eval": table(SFT_SCHEMA), "chunks": table(CHUNKS)}
    Options = CorpusOptions

    def fingerprint(self, cfg: dict[str, Any]) -> dict[str, Any]:
        return {k: Path(cfg[k]).read_text(encoding="utf-8") for k in ("rows", "chunks")}

    def run(self, ctx: StepContext) -> StepOutput:
        def read(path: str) -> list[dict]:
            return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line]

        rows = read(ctx.options.rows)
        out = {"train": ctx.write_table("train", [r for r in rows if r["split"] == "train"]),
               "eval": ctx.write_table("eval", [r for r in rows if r["split"] == "eval"]),
               "chunks": ctx.write_table("chunks", read(ctx.options.chunks))}
        return StepOutput(out, report=StepReport(rows_in=len(rows), kept=len(rows)))
