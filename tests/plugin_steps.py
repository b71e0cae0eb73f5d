"""A step of the tests' own, loaded through a recipe's `plugins:` like a user's step would be.

`gate` sits between chunk and clean and passes the chunks on, unless its
recipe option `fail` is set: then it fails at run time, after validation,
the way a step meets a broken input or a full disk.
"""
from __future__ import annotations

from infuse.operators.parsers.document import CHUNK_SCHEMA
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, table


class GateOptions(StepOptions):
    fail: bool = False


class Gate(Step):
    name = "gate"
    stage = 25
    description = "pass chunks on; fail on purpose when told to"
    inputs = ("chunks",)
    outputs = {"chunks": table(CHUNK_SCHEMA)}
    Options = GateOptions

    def run(self, ctx: StepContext) -> StepOutput:
        if ctx.options.fail:
            raise RuntimeError("gate was told to fail")
        chunks = ctx.read("chunks")
        return StepOutput({"chunks": ctx.write_table("chunks", chunks)},
                          report=StepReport(rows_in=chunks.num_rows, kept=chunks.num_rows))

