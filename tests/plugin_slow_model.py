"""A toy model step of the tests, loaded through a recipe's `plugins:`: it writes its model
directory slowly, one file at a time, so a test can kill it mid-write."""
from __future__ import annotations

import time

from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, model


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
        n = ctx.input("chunks").rows
        with ctx.dir_output("model") as out:
            for i in range(ctx.options.files):
                (out.path / f"shard-{i:03d}.bin").write_bytes(f"{n}:{i}".encode() * 100)
                time.sleep(ctx.options.delay_s)
            (out.path / "card.json").write_text('{"method": "toy"}')
        return StepOutput({"model": out.ref})
