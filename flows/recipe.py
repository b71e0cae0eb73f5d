"""The recipe: one YAML file that says what to read, where to store and how each step runs.

Validated by pydantic with unknown keys forbidden, so a typo is an error that
names the field and lists what is allowed, instead of a silently ignored option.
Relative paths are resolved against the directory you run infuse from.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, create_model

from infuse.flows import steps as _steps  # noqa: F401  (registers the pipeline's steps)
from infuse.operators.common.base import Strict
from infuse.tasks.framework.step import StepContractError, StepOptions, load_plugin, ordered_steps


class RunnerOptions(Strict):
    """Where the data steps' shards run: in this process, or on a Dask / Ray cluster."""

    kind: Literal["local", "dask", "ray"] = "local"
    workers: int = Field(2, ge=1)
    address: str | None = Field(None, description="an existing cluster's address; a local cluster is started when empty")
    shard_rows: int = Field(2_000, ge=1, description="rows per shard the data steps fan out (outputs do not depend on it)")
    worker_timeout_s: float = Field(120.0, gt=0, description="fail the run when the cluster has had no live worker "
                                                             "this long, instead of waiting forever")


class ModelOptions(Strict):
    """The base model every model step starts from (select's scorer, cpt, sft, preference, dpo, evaluate)."""

    path: str | None = Field(None, description="a local model directory in HF layout; empty = the packaged "
                                               "Gemma 3 270M (converted once, offline)")
    chat_template: str | None = Field(None, description="the model's own template when empty; for a base model "
                                                        "without one: chatml, gemma, qwen, llama3 or plain")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="auto: bf16 on a GPU, "
                                                                                         "fp32 on CPU")
    attn: Literal["auto", "sdpa", "eager", "flex_attention", "flash_attention_2", "varlen"] = Field(
        "auto", description="attention kernel for training; auto: flash_attention_2 when installed, else torch's "
                            "varlen attention on a GPU, sdpa on CPU (packed samples never attend to each other)")


class RecipeBase(Strict):
    name: str = "infuse"
    input: str = Field(..., description="folder of documents to read")
    storage: str = Field("runs", description="artifact root: a local path or any fsspec URL (s3://, gs://, ...)")
    runner: RunnerOptions = Field(default_factory=RunnerOptions)
    model: ModelOptions = Field(default_factory=ModelOptions)
    plugins: list[str] = Field(default_factory=list, description="modules or .py files that define more steps")

    def step_options(self, step: str) -> StepOptions:
        return getattr(self.steps, step)  # type: ignore[attr-defined]


Recipe = RecipeBase  # the type to annotate with; the model that validates is made from the registry


def recipe_model(plugins: list[str] | None = None) -> type[RecipeBase]:
    """The recipe schema for the pipeline's steps and those of the plugins: one `steps.<name>` section
    per step, of its Options."""
    steps = ordered_steps(plugins)
    sig = tuple((c.name, id(c.Options)) for c in steps)
    cached = _MODELS.get(sig)
    if cached is None:
        fields: dict[str, Any] = {c.name: (c.Options, Field(default_factory=c.Options, description=c.description))
                                  for c in steps}
        steps_model = create_model("Steps", __base__=Strict, **fields)
        cached = create_model("Recipe", __base__=RecipeBase, steps=(steps_model, Field(default_factory=steps_model)))
        _MODELS[sig] = cached
    return cached


_MODELS: dict[tuple, type[RecipeBase]] = {}


class RecipeError(ValueError):
    """A recipe that does not validate; `str()` lists every problem, one per line."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: {len(problems)} problem(s)\n" + "\n".join(f"  - {p}" for p in problems))


def step_problem(step: str, options: type[BaseModel], problem: str) -> str:
    """A step's check() problem under its recipe key: `user_data.0: ...` of preference is
    `steps.preference.user_data.0: ...`; one that starts with no option of the step stays under the
    step (`steps.sft: method qlora ... needs a CUDA GPU`)."""
    head, sep, _ = problem.partition(": ")
    if sep and " " not in head and head.split(".", 1)[0] in options.model_fields:
        return f"steps.{step}.{problem}"
    return f"steps.{step}: {problem}"


def _allowed_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The fields allowed at the parent of `loc`, to suggest them for an unknown key."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            continue
        field = current.model_fields.get(part)
        if field is None:
            return []
        ann = field.annotation
        current = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if current is None:  # unions / generics: look for a model among the arguments
            for arg in getattr(ann, "__args__", ()) or ():
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    current = arg
                    break
    return sorted(current.model_fields) if current is not None else []


def format_errors(err: ValidationError, model: type[BaseModel] | None = None) -> list[str]:
    model = model or recipe_model()
    out = []
    for e in err.errors():
        loc = tuple(e["loc"])
        where = ".".join(str(p) for p in loc) or "(top level)"
        if e["type"] == "extra_forbidden":
            allowed = _allowed_fields(model, loc)
            out.append(f"{where}: unknown key" + (f"; allowed here: {', '.join(allowed)}" if allowed else ""))
        else:
            msg = e["msg"]
            if "input" in e and e["type"] not in ("missing",):
                msg += f" (got {e['input']!r})"
            out.append(f"{where}: {msg}")
    return out


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe; raise RecipeError listing every problem."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise RecipeError(str(path), ["file not found"]) from None
    except yaml.YAMLError as e:
        raise RecipeError(str(path), [f"not valid YAML: {e}"]) from None
    return parse_recipe(data, str(path))


def parse_recipe(data: dict[str, Any], source: str = "<recipe>") -> Recipe:
    """Validate a recipe. Its plugins are imported first, so their steps' sections are known."""
    if not isinstance(data, dict):
        raise RecipeError(source, ["the recipe must be a mapping of keys to values"])
    problems = []
    for i, plugin in enumerate(data.get("plugins") or []):
        try:
            load_plugin(str(plugin))
        except Exception as e:
            problems.append(f"plugins.{i}: cannot import {plugin!r}: {type(e).__name__}: {e}")
    if problems:
        raise RecipeError(source, problems)
    try:
        model = recipe_model(data.get("plugins") or [])
    except StepContractError as e:  # the plugins' steps do not fit the pipeline (a stage taken twice)
        raise RecipeError(source, [f"plugins: {e}"]) from e
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise RecipeError(source, format_errors(e, model)) from None
