"""mix: the domain QA plus general datasets -> `train` and `eval` (SFT_SCHEMA) and `exports` for other tools.

The work is operators/mix/run.py's; the step resolves the recipe's paths and checks the general files.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from infuse.operators.common.base import OperatorError
from infuse.operators.common.dataset import SFT_SCHEMA
from infuse.operators.mix.config import GeneralSource, IdentityValues, MixConfig
from infuse.operators.mix.load import check_rows, file_sha256, row_problem, source_path
from infuse.operators.mix.run import run_mix
from infuse.tasks.framework.checks import file_problem, row_problems, shown
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, report, table


class MixOptions(StepOptions, MixConfig):
    """General data, ratio, split and exports (see README "Mix")."""


class Mix(Step):
    name = "mix"
    stage = 80
    description = "domain QA + general data at domain_ratio, deduplicated, split 9:1 by chunk, exported"
    inputs = ("qa",)
    outputs = {"train": table(SFT_SCHEMA, "the training mix"), "eval": table(SFT_SCHEMA, "held-out rows, 1 in 10"),
               "exports": report("LLaMA-Factory, ms-swift and OpenAI files of both splits")}
    Options = MixOptions

    def config(self, recipe: Any) -> dict[str, Any]:
        """General paths resolved (the base: they are input files); synthesize's identity as the default for
        {{name}}/{{author}}."""
        cfg = super().config(recipe)
        synth = getattr(getattr(recipe, "steps", None), "synthesize", None)
        ident = getattr(synth, "identity", None)
        if ident is not None:
            cfg["identity_fallback"] = {"name": getattr(ident, "name", None), "author": getattr(ident, "author", None)}
        return cfg

    def fingerprint(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """Every source's content, the shipped sets' too; a missing file is a recipe error (MixInputError)."""
        opts = self.options(cfg)
        return {"general": {s.source_name: file_sha256(source_path(s)) for s in opts.general}}

    def check(self, cfg: dict[str, Any]) -> list[str]:
        """Every general file the recipe names: there, readable, and each row (line) one that mix can read. Not
        the base's input-file check: mix also reads Parquet and text in other encodings than UTF-8."""
        problems: list[str] = []
        for i, src in enumerate(self.options(cfg).general):
            if src.path is not None:
                problems += _general_file_problems(f"general.{i}.path", src)
        return problems

    def run(self, ctx: StepContext) -> StepOutput:
        config = MixConfig.model_validate(ctx.options.model_dump(include=set(MixConfig.model_fields)))
        fallback = IdentityValues.model_validate(ctx.cfg.get("identity_fallback") or {})
        qa = ctx.read("qa").to_pylist()
        with ctx.dir_output("exports") as out:
            res = run_mix(qa, config, fallback, out.path)
            out.describe = f"exports: {', '.join(config.exports)} ({len(res.exports)} files)"
        train, eval_ = ctx.write_table("train", res.train), ctx.write_table("eval", res.eval)
        return StepOutput({"train": train, "eval": eval_, "exports": out.ref}, res.rejects, StepReport(
            rows_in=res.rows_in, kept=res.kept, unit_in="rows", unit_out="distinct rows", markdown=res.markdown,
            tables={"sources": res.sources}, images={"composition": res.composition}, stats=res.stats))


def _general_file_problems(option: str, src: GeneralSource) -> list[str]:
    """What stops mix reading a general file, read as mix reads it: a .json document or JSON Lines, or
    Parquet; every row must be alpaca, sharegpt or messages (`format`, `columns`)."""
    path = Path(src.path or "")
    problem = file_problem(option, path, (".json", ".jsonl", ".ndjson", ".parquet"))
    if problem:
        return [problem]
    try:
        rows = check_rows(path)
    except OperatorError as e:
        return [f"{option}: {shown(path)}: {e.message}"]
    if not rows:
        return [f"{option}: {shown(path)} has no rows"]
    return row_problems(option, path, rows, lambda _, row: row_problem(row, src))
