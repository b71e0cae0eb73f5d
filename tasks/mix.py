"""mix: the domain QA plus general datasets -> `train` and `eval` (SFT_SCHEMA) and `exports` for other tools.

The work is operators/mix/run.py's; the general files are input files (resolved, fingerprinted, checked by
validate as operators/mix/check.py reads them).
"""
from __future__ import annotations

from typing import Any

from infuse.operators.common.dataset import SFT_SCHEMA
from infuse.operators.mix.config import IdentityValues, MixConfig
from infuse.operators.mix.load import file_sha256, source_path
from infuse.operators.mix.run import run_mix
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

