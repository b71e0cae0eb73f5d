"""mix: the domain QA plus general datasets -> `train` and `eval` (SFT_SCHEMA) and `exports` for other tools."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from infuse.operators.common.dataset import SFT_SCHEMA
from infuse.operators.mix import IdentityValues, MixConfig, file_sha256, mix, source_path, write_exports
from infuse.operators.mix.report import composition_png, markdown, source_table
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, report, table
from infuse.tasks.framework.checks import file_problem, jsonl_rows, read_text, row_problems, shown


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
        """General paths resolved against the directory infuse runs from; synthesize's identity as the
        default for {{name}}/{{author}}."""
        cfg = super().config(recipe)
        for src in cfg.get("general", []):
            if src.get("path"):
                src["path"] = str(Path(src["path"]).resolve())
        synth = getattr(getattr(recipe, "steps", None), "synthesize", None)
        ident = getattr(synth, "identity", None)
        if ident is not None:
            cfg["identity_fallback"] = {"name": getattr(ident, "name", None), "author": getattr(ident, "author", None)}
        return cfg

    def key_config(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """A file's place is not part of the key; its content is (fingerprint)."""
        out = super().key_config(cfg)
        out["general"] = [{k: v for k, v in s.items() if k != "path"} for s in out.get("general", [])]
        return out

    def fingerprint(self, cfg: dict[str, Any]) -> dict[str, Any]:
        opts = self.options(cfg)
        return {"general": {s.source_name: file_sha256(source_path(s)) for s in opts.general}}

    def check(self, cfg: dict[str, Any]) -> list[str]:
        """Every general file the recipe names: there, readable, and each row (line) one that mix can read."""
        problems: list[str] = []
        for i, src in enumerate(self.options(cfg).general):
            if src.path is not None:
                problems += _general_file_problems(f"general.{i}.path", src)
        return problems

    def run(self, ctx: StepContext) -> StepOutput:
        opts: MixOptions = ctx.options  # type: ignore[assignment]
        config = MixConfig.model_validate(opts.model_dump(include=set(MixConfig.model_fields)))
        fallback = IdentityValues.model_validate(ctx.cfg.get("identity_fallback") or {})
        qa = ctx.read("qa")
        res = mix(qa.to_pylist(), config, fallback)
        train = ctx.write_table("train", [s.to_row() for s in res.train])
        eval_ = ctx.write_table("eval", [s.to_row() for s in res.eval])
        with ctx.dir_output("exports") as out:
            files = write_exports(out.path, {"train": [s.messages for s in res.train],
                                             "eval": [s.messages for s in res.eval]}, config.exports)
            out.describe = f"exports: {', '.join(config.exports)} ({len(files)} files)"
        rows = source_table(res)
        return StepOutput({"train": train, "eval": eval_, "exports": out.ref}, res.rejects, StepReport(
            rows_in=sum(s.rows_read for s in res.sources), kept=len({s.ref for s in res.train + res.eval}),
            unit_in="rows", unit_out="distinct rows", markdown=markdown(res, config.max_upsample),
            tables={"sources": rows}, images={"composition": composition_png(res)},
            stats={"train_rows": len(res.train), "eval_rows": len(res.eval),
                   "domain_share": round(res.domain_share, 4), "general_wanted": res.general_wanted,
                   "exports": files, "sources": {r["source"]: r for r in rows}}))


def _general_file_problems(option: str, src: Any) -> list[str]:
    """What stops mix reading a general file, read as mix reads it (operators.mix.load.read_rows): a .json
    document or JSON Lines, or Parquet; every row must be alpaca, sharegpt or messages (`format`, `columns`)."""
    import json

    from infuse.operators.common.base import OperatorError
    from infuse.operators.mix.formats import to_messages
    from infuse.operators.mix.load import read_rows
    from infuse.operators.mix.sample import RowError

    path = Path(src.path)
    problem = file_problem(option, path, (".json", ".jsonl", ".ndjson", ".parquet"))
    if problem:
        return [problem]

    def shape(where: str, row: Any) -> str | None:
        try:
            to_messages(row, src.format, src.columns)
        except RowError as e:
            return f"{e.reason}: {e.message}"
        return None

    rows: list[tuple[str, Any]] | None = None
    if path.suffix.lower() != ".parquet":
        text, problems = read_text(option, path, lenient=True)
        if text is None:
            return problems
        if path.suffix.lower() == ".json":
            try:
                json.loads(text)
            except json.JSONDecodeError:  # JSON Lines under .json, as mix reads it
                rows = jsonl_rows(text, split_lines=False)
        else:
            rows = jsonl_rows(text, split_lines=False)
    if rows is None:  # a JSON document or Parquet: rows by index
        try:
            rows = [(f"row {i}", r) for i, r in read_rows(path)]
        except OperatorError as e:
            return [f"{option}: {shown(path)}: {e.message}"]
    if not rows:
        return [f"{option}: {shown(path)} has no rows"]
    return row_problems(option, path, rows, shape)
