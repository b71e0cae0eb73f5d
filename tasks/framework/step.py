"""The step contract: one class per step, in one file, registered by being defined.

A step says what it is (`name`, `description`, `gpu`), where it stands in the
pipeline (`stage`, or none: right after the step that makes its input), what it
reads (`inputs`, by artifact name, or `models()`: every model upstream) and
writes (`outputs`: tables, models, reports), whether it needs the recipe's
`model` section (`uses_model`), and its recipe options (`Options`, which become
the recipe's `steps.<name>` section; a file it reads is an `input_file` option).
`run(ctx)` does the work and returns a StepOutput.

Everything steps do the same way lives here, not in the steps: the cache key,
the input files (resolved, fingerprinted, checked), the cleanup of a killed
try, the rejects and report artifacts, timing, the commit of all outputs as one
unit, and the UI artifacts. The registry and the pipeline's order are in
registry.py.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from infuse.operators.common.base import Reject, Strict, code_version, key_dump, module_closure, runtime, stable_hash
from infuse.storage import ArtifactRef, ArtifactStore, ArtifactWriter, DirOutput
from infuse.operators.common import input_files as files
from infuse.tasks.framework.progress import Progress
from infuse.tasks.framework.registry import (PLUGINS, REGISTRY, StepContractError, get_step, load_plugin,
                                             ordered_steps, register)

__all__ = ["PLUGINS", "REGISTRY", "StepContractError", "get_step", "load_plugin", "ordered_steps"]


def _versions(*dists: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for d in dists:
        try:
            out[d] = version(d)
        except PackageNotFoundError:
            out[d] = "absent"
    return out


# Libraries whose upgrade can change what a step produces (a data-juicer upgrade can change what a
# filter keeps; a trl upgrade, how a model trains): part of every step's code version.
LIBRARY_VERSIONS = _versions("py-data-juicer", "datasketch", "pypdf", "python-docx", "python-pptx", "ebooklib",
                             "beautifulsoup4", "charset-normalizer", "jieba", "transformers", "pyarrow",
                             "torch", "trl", "peft", "accelerate")

KINDS = ("table", "model", "report")
RESERVED = ("rejects", "report")  # every step writes these two itself

# Where a step's code version looks for the code it runs (see Step.key_modules)
KEY_PREFIXES = ("infuse.operators", "infuse.tasks.framework.memo", "infuse.tasks.framework.item_memo",
                "infuse.tasks.framework.shards", "infuse.tasks.framework.training")
KEY_ROOTS = ("infuse.operators.common.base",)  # Reject.to_row: the rows of every step's rejects artifact


@dataclass(frozen=True)
class Output:
    """One artifact a step writes: a table (Parquet), a model or a report (a directory)."""

    kind: str
    schema: pa.Schema | None = None  # a table's, when fixed
    description: str = ""


def table(schema: pa.Schema | None = None, description: str = "") -> Output:
    return Output("table", schema, description)


def model(description: str = "") -> Output:
    return Output("model", None, description)


def report(description: str = "") -> Output:
    return Output("report", None, description)


@dataclass(frozen=True)
class Input:
    """An artifact a step reads: `chunks` (from the nearest enabled step before it that writes
    chunks) or `sft.model` (that step's, only); with `kind` (see models()), every artifact of that kind
    that an enabled step before it writes."""

    name: str
    optional: bool = False
    kind: str | None = None

    @property
    def artifact(self) -> str:
        return self.name.rpartition(".")[2]

    @property
    def producer(self) -> str | None:
        return self.name.rpartition(".")[0] or None


def optional(name: str) -> Input:
    return Input(name, optional=True)


def models(optional: bool = False) -> Input:
    """Every model an enabled step before this one writes, as inputs named `<step>.<output>` in pipeline
    order (ctx.models() lists them; the last is the newest model)."""
    return Input("models", optional=optional, kind="model")


class StepOptions(Strict):
    """Options every step has; none of them changes what the step produces."""

    enabled: bool = runtime(True, description="run this step; when off, later steps read the artifact from the "
                                              "step before it")
    retries: int = runtime(0, ge=0, le=10, description="Prefect retries for an infrastructure failure of the step")
    retry_delay_s: float = runtime(5.0, ge=0)


@dataclass
class StepReport:
    """What a step says about its run: counts for the manifest and UI, markdown, tables and plots."""

    rows_in: int | None = None
    kept: int | None = None
    unit_in: str = "rows"
    unit_out: str = "rows"
    markdown: str = ""  # appended to the step's summary in the UI and saved as report.md
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # extra UI tables: <step>-<name>
    images: dict[str, bytes] = field(default_factory=dict)  # PNGs: saved in the report, shown in the UI
    stats: dict[str, Any] = field(default_factory=dict)  # into the manifest and the step's result


@dataclass
class StepOutput:
    outputs: dict[str, ArtifactRef]
    rejects: list[Reject] = field(default_factory=list)
    report: StepReport = field(default_factory=StepReport)


@dataclass
class StepResult:
    """What a step task returns (and Prefect caches): refs to its artifacts plus its stats."""

    step: str
    key: str
    outputs: dict[str, dict[str, Any]]
    rejects: dict[str, Any]
    report: dict[str, Any]
    stats: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "key": self.key, "outputs": self.outputs, "rejects": self.rejects,
                "report": self.report, "stats": self.stats}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StepResult":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def refs(self) -> dict[str, dict[str, Any]]:
        return {**self.outputs, "rejects": self.rejects, "report": self.report}


class Step:
    """Base of every step; see the module docstring. Subclass it, set the class attributes, write run()."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    gpu: ClassVar[bool] = False  # wants a GPU (`infuse steps` says [gpu]); uses_gpu(cfg) may decide per config
    stage: ClassVar[float | None] = None  # pipeline order: parse 10, chunk 20, ...; None: after its inputs' maker
    uses_model: ClassVar[bool] = False  # its config carries the recipe's `model` section (the base model)
    inputs: ClassVar[tuple[str | Input, ...]] = ()
    outputs: ClassVar[dict[str, Output]] = {}
    Options: ClassVar[type[StepOptions]] = StepOptions
    operators: ClassVar[tuple[str, ...]] = ()  # modules it loads dynamically, which imports alone would not reveal
    rerun_on: ClassVar[tuple[str, ...]] = ()  # run flags (e.g. "retry_failed") that make this step recompute

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if not cls.__dict__.get("name"):
            return  # an abstract helper class
        for out, spec in cls.outputs.items():
            if out in RESERVED or spec.kind not in KINDS:
                raise StepContractError(f"step {cls.name}: output {out!r} ({spec.kind}) is reserved or of no known "
                                        f"kind; kinds are {', '.join(KINDS)}")
        register(cls)

    # ---- declarations, as data ------------------------------------------------
    @classmethod
    def input_specs(cls) -> list[Input]:
        return [i if isinstance(i, Input) else Input(i) for i in cls.inputs]

    @classmethod
    def module(cls) -> str:
        return cls.__module__

    @classmethod
    def key_modules(cls) -> list[str]:
        """The modules whose source is in the step's code version: the code that computes its outputs.

        Its own module, its `operators` and operators/common/base.py (Reject.to_row makes every rejects
        artifact's rows), and what they import under KEY_PREFIXES: infuse.operators, less the modules that
        declare `PRESENTATION = True` (plots, reports); and the framework modules whose code shapes what a
        step writes: memo (RowMemo.merge puts memo'd and computed result rows together, in input order),
        item_memo (an item's value goes through its JSON round trip into the output), shards (map_shards
        returns the shards' results in input order) and training (the job the worker trains: base model,
        data files, options; and the rejects made from its result). Left out, as no output depends on them:
        step and registry (wiring, commit, timing), files (an input file's content is in the key itself),
        checks (validation only), and how work is shown or scheduled: progress, report, training_report,
        prefect_task. Editing those recomputes nothing.
        """
        return module_closure((cls.module(), *cls.operators, *KEY_ROOTS), KEY_PREFIXES)

    # ---- hooks, with their defaults -------------------------------------------
    def config(self, recipe: Any) -> dict[str, Any]:
        """The step's config for this run: its recipe section (input files' paths resolved), plus the
        recipe's `model` section when it `uses_model`; a step that needs more of the recipe adds it here."""
        cfg = recipe.step_options(self.name).model_dump(mode="json")
        files.resolve_paths(self.Options, cfg)
        if self.uses_model:
            cfg["model"] = recipe.model.model_dump(mode="json")
        return cfg

    def options(self, cfg: dict[str, Any]) -> StepOptions:
        return self.Options.model_validate({k: v for k, v in cfg.items() if k in self.Options.model_fields})

    def key_config(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """What of the config goes into the cache key: all but the runtime fields (retries, timeouts,
        concurrency, at any depth) and the input files' places, plus the extras `config` added."""
        extras = {k: v for k, v in cfg.items() if k not in self.Options.model_fields}
        dump = key_dump(self.options(cfg))
        files.drop_paths(self.Options, dump)
        return {**dump, **extras}

    def fingerprint(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """What the output depends on besides inputs, code and config: by default the content of the
        input files its options name (parse overrides it: the folder's files)."""
        found = files.fingerprints(self.Options, cfg)
        return {"input_files": found} if found else {}

    def code_version(self) -> str:
        """The source of key_modules(), plus the library versions that shape its output."""
        code = code_version(self.module(), *self.operators, *KEY_ROOTS, prefixes=KEY_PREFIXES)
        return stable_hash({"code": code, "libs": LIBRARY_VERSIONS})[:16]

    def cache_key(self, cfg: dict[str, Any], inputs: dict[str, dict[str, Any]]) -> str:
        """The content address of the step's output: same code, config and inputs -> same key."""
        return stable_hash({
            "step": self.name,
            "code": self.code_version(),
            "config": self.key_config(cfg),
            "inputs": {k: v["sha256"] for k, v in sorted(inputs.items())},
            "fingerprint": self.fingerprint(cfg),
        })[:24]

    def check(self, cfg: dict[str, Any]) -> list[str]:
        """Problems this machine would have running the step with this config (a GPU-only method on a CPU,
        a missing package, an input file that is not there or does not parse), said by `infuse validate`
        and before `infuse run` starts anything. By default: the input files' problems."""
        return files.problems(self.Options, cfg)

    def uses_gpu(self, cfg: dict[str, Any]) -> bool:
        """Whether this run of the step wants the GPU: its task then takes a slot of the `infuse-gpu` limit
        and the `gpu` tag. By default the class's `gpu`."""
        return self.gpu

    def estimate(self, ctx: "StepContext") -> str | None:
        """`infuse plan`: what running this step would cost, said before running it (None: no estimate)."""
        return None

    def run(self, ctx: "StepContext") -> StepOutput:
        raise NotImplementedError

    # ---- what every step does the same way ------------------------------------
    def execute(self, ctx: "StepContext") -> StepResult:
        """Run the step and commit everything it wrote as one unit."""
        store = ctx.store
        store.invalidate(self.name, ctx.key, fresh=ctx.fresh)  # until the commit, this key is not complete
        if ctx.fresh:
            store.clear_work(self.name, ctx.key)
        t0 = time.perf_counter()
        out = self.run(ctx)
        wall = time.perf_counter() - t0
        missing = set(self.outputs) - set(out.outputs)
        extra = set(out.outputs) - set(self.outputs)
        if missing or extra:
            raise StepContractError(f"step {self.name}: outputs {sorted(out.outputs)} do not match its declaration "
                                    f"{sorted(self.outputs)}")
        rep = out.report
        rejects_ref = store.write_rejects(self.name, ctx.key, [r.to_row(self.name) for r in out.rejects])
        by_reason = dict(Counter(r.reason for r in out.rejects).most_common())
        stats = {**rep.stats, "rows_in": rep.rows_in, "kept": rep.kept, "units": f"{rep.unit_in} -> {rep.unit_out}",
                 "rejected": len(out.rejects), "rejected_by_reason": by_reason, "wall_s": round(wall, 3)}
        from infuse.tasks.framework.report import summary_markdown, publish

        refs = {**out.outputs, "rejects": rejects_ref}
        md = summary_markdown(self.name, ctx.key, store, refs, stats, rep)
        files = {"report.md": md.encode(), "stats.json": json.dumps(stats, ensure_ascii=False, indent=1,
                                                                    default=str).encode()}
        files.update({f"{name}.png": png for name, png in rep.images.items()})
        report_ref = store.write_dir(self.name, ctx.key, "report", files, kind="report",
                                     describe=f"report: {', '.join(sorted(files))}")
        refs["report"] = report_ref
        store.commit_step(self.name, ctx.key, refs)  # written last: the step's commit point
        publish(self.name, store, refs, stats, rep)
        return StepResult(self.name, ctx.key, {n: r.to_dict() for n, r in out.outputs.items()},
                          rejects_ref.to_dict(), report_ref.to_dict(), stats)


class StepContext:
    """What a step's run() gets: its options, inputs, a place to write outputs, progress and logging."""

    def __init__(self, step: Step, key: str, store: ArtifactStore, cfg: dict[str, Any],
                 inputs: dict[str, ArtifactRef], runtime: dict[str, Any] | None = None,
                 log: logging.Logger | logging.LoggerAdapter | None = None) -> None:
        self.step, self.key, self.store, self.cfg = step, key, store, cfg
        self.inputs = inputs
        self.runtime = runtime or {}
        self.options = step.options(cfg)
        self.log = log or logging.getLogger(f"infuse.{step.name}")

    @property
    def fresh(self) -> bool:
        """--refresh: recompute from scratch (resumable shards and checkpoints are thrown away)."""
        return bool(self.runtime.get("fresh"))

    # ---- inputs ---------------------------------------------------------------
    def has(self, name: str) -> bool:
        return name in self.inputs

    def input(self, name: str) -> ArtifactRef:
        if name not in self.inputs:
            raise KeyError(f"step {self.step.name}: no input {name!r} in this run (has: {', '.join(self.inputs)})")
        return self.inputs[name]

    def read(self, name: str, columns: list[str] | None = None) -> pa.Table:
        return self.store.read(self.input(name), columns=columns)

    def batches(self, name: str, batch_size: int = 10_000, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        return self.store.iter_batches(self.input(name), batch_size=batch_size, columns=columns)

    def input_dir(self, name: str) -> Path:
        """A model or report input as a local directory."""
        return self.store.local_dir(self.input(name))

    def models(self) -> list[str]:
        """The model inputs named `<step>.<output>`, in the order the graph gave them: a step that declares
        models() (and no model input before it) gets them in pipeline order, so the last is the newest."""
        return [n for n, ref in self.inputs.items() if "." in n and ref.kind == "model"]

    # ---- outputs --------------------------------------------------------------
    def _declared(self, name: str, kind: str) -> None:
        spec = self.step.outputs.get(name)
        if spec is None or spec.kind != kind:
            raise StepContractError(f"step {self.step.name}: {name!r} is not a declared {kind} output")

    def writer(self, name: str, schema: pa.Schema | None = None, **kw: Any) -> ArtifactWriter:
        self._declared(name, "table")
        return self.store.writer(self.step.name, self.key, name, schema or self.step.outputs[name].schema, **kw)

    def write_table(self, name: str, table: pa.Table | list[dict[str, Any]], schema: pa.Schema | None = None) -> ArtifactRef:
        self._declared(name, "table")
        return self.store.write_table(self.step.name, self.key, name, table, schema or self.step.outputs[name].schema)

    @contextmanager
    def dir_output(self, name: str) -> Iterator[DirOutput]:
        """A local directory to fill with a model or report output; committed atomically on a clean exit."""
        spec = self.step.outputs.get(name)
        if spec is None or spec.kind == "table":
            raise StepContractError(f"step {self.step.name}: {name!r} is not a declared model or report output")
        with self.store.dir_writer(self.step.name, self.key, name, kind=spec.kind) as out:
            yield out

    def work_dir(self) -> Path:
        """Scratch for this step and key that survives a kill (checkpoints, resumable state)."""
        return self.store.work_dir(self.step.name, self.key)

    def cached_dir(self, name: str, build: Callable[[Path], None]) -> Path:
        """`work_dir()/name`, built once per key: `build(folder)` fills a fresh folder beside it, renamed into
        place when build returns, so a killed build leaves nothing half-done to be reused; when the folder is
        there (a re-run after a kill) it is returned as it is."""
        target = self.work_dir() / name
        if target.is_dir():
            return target
        tmp = target.with_name(f"{name}.building")
        shutil.rmtree(tmp, ignore_errors=True)  # what a killed build left
        tmp.mkdir(parents=True)
        build(tmp)
        tmp.rename(target)
        return target

    # ---- units that commit together (a shard's outputs) ------------------------
    def save_unit(self, unit: str, tables: dict[str, pa.Table]) -> dict[str, ArtifactRef]:
        return self.store.commit_unit(self.step.name, self.key, unit, tables)

    def load_unit(self, unit: str) -> dict[str, ArtifactRef] | None:
        return self.store.load_unit(self.step.name, self.key, unit)

    # ---- progress ---------------------------------------------------------------
    def progress(self, total: int | None, desc: str = "", unit: str = "items") -> Progress:
        """A progress bar in the terminal and a progress artifact in the UI for one piece of long work."""
        return Progress(total, desc or self.step.name, unit=unit, key=f"{self.step.name.replace('_', '-')}-progress",
                        log=self.log)
