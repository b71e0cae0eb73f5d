"""A step of the tests' own, loaded through a recipe's `plugins:` like a user's step would be.

`gate` sits between chunk and clean and passes the chunks on, unless its
recipe option `fail` is set: then it fails at run time, after validation,
the way a step meets a broken input or a full disk.
"""
from __future__ import annotations

from infuse.operators.document import CHUNK_SCHEMA
from infuse.tasks.base import Step, StepContext, StepOptions, StepOutput, StepReport, model, table


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


class SlowModelOptions(StepOptions):
    files: int = 40
    delay_s: float = 0.05


class SlowModel(Step):
    """A toy model step that writes its model directory slowly, so a test can kill it mid-write."""

    name = "slow_model"
    stage = 26
    description = "write a toy model directory, one file at a time"
    inputs = ("chunks",)
    outputs = {"model": model()}
    Options = SlowModelOptions

    def run(self, ctx: StepContext) -> StepOutput:
        import time

        n = ctx.input("chunks").rows
        with ctx.dir_output("model") as out:
            for i in range(ctx.options.files):
                (out.path / f"shard-{i:03d}.bin").write_bytes(f"{n}:{i}".encode() * 100)
                time.sleep(ctx.options.delay_s)
            (out.path / "card.json").write_text('{"method": "toy"}')
        return StepOutput({"model": out.ref})
