"""The recipe: one YAML file that says what to read, where to store and how each step runs.

Validated by pydantic with unknown keys forbidden, so a typo is an error that
names the field and lists what is allowed, instead of a silently ignored option.
Relative paths are resolved against the directory you run infuse from.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from infuse.operators.clean import CleanConfig, OpSpec
from infuse.operators.dedup import DedupConfig
from infuse.operators.llm import LLMConfig
from infuse.operators.qa_filter import QAFilterConfig
from infuse.operators.synth import SynthConfig
from infuse.operators.quality import FilterConfig, FilterOpSpec


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StepOptions(Strict):
    """Options every step has."""

    enabled: bool = True
    retries: int = Field(0, ge=0, le=10, description="Prefect retries for an infrastructure failure of the step")
    retry_delay_s: float = Field(5.0, ge=0)


class ParseOptions(StepOptions):
    max_file_mb: float = Field(50.0, gt=0, description="files over this size are rejected as too_large")


class ChunkOptions(StepOptions):
    target_chars: int = Field(500, description="aim for chunks of about this many characters")
    max_chars: int = Field(1000, description="hard ceiling of a chunk, except one sentence longer than it")
    min_chars: int = Field(50, description="smaller trailing pieces merge into their neighbour")
    overlap_chars: int = Field(50, description="overlap between consecutive chunks of a section")


class CleanOptions(StepOptions, CleanConfig):
    """data-juicer mappers by registered name (or infuse's safe ones), in order, each with params and a gate."""

    ops: list[OpSpec] = Field(default_factory=lambda: CleanConfig.default().ops)


class FilterOptions(StepOptions, FilterConfig):
    """Stat ops with fixed `min`/`max` and/or `auto` (3σ) bounds."""

    ops: list[FilterOpSpec] = Field(default_factory=lambda: FilterConfig.default().ops)


class DedupOptions(StepOptions, DedupConfig):
    """Exact, then SimHash and/or MinHash-LSH near-duplicates."""


class SynthesizeOptions(StepOptions, SynthConfig):
    """Synthesis strategies per document format, and the LLM that runs them."""

    llm: LLMConfig = Field(default_factory=lambda: LLMConfig(backend="transformers"),
                           description="backend: transformers (local), openai (any compatible endpoint) or vllm")
    max_llm_items: int | None = Field(None, ge=0, description="cap on LLM work items (templates are not capped)")


class QAFilterOptions(StepOptions, QAFilterConfig):
    """Sample filters; `llm` is used only by the optional grounding judge."""

    llm: LLMConfig = Field(default_factory=lambda: LLMConfig(backend="transformers"))


class RunnerOptions(Strict):
    """Where the data steps' shards run: in this process, or on a Dask / Ray cluster."""

    kind: Literal["local", "dask", "ray"] = "local"
    workers: int = Field(2, ge=1)
    address: str | None = Field(None, description="an existing cluster's address; a local cluster is started when empty")


class Steps(Strict):
    parse: ParseOptions = Field(default_factory=ParseOptions)
    chunk: ChunkOptions = Field(default_factory=ChunkOptions)
    clean: CleanOptions = Field(default_factory=CleanOptions)
    filter: FilterOptions = Field(default_factory=FilterOptions)
    dedup: DedupOptions = Field(default_factory=DedupOptions)
    synthesize: SynthesizeOptions = Field(default_factory=SynthesizeOptions)
    qa_filter: QAFilterOptions = Field(default_factory=QAFilterOptions)


class Recipe(Strict):
    name: str = "infuse"
    input: str = Field(..., description="folder of documents to read")
    storage: str = Field("runs", description="artifact root: a local path or any fsspec URL (s3://, gs://, ...)")
    runner: RunnerOptions = Field(default_factory=RunnerOptions)
    steps: Steps = Field(default_factory=Steps)

    def step_options(self, step: str) -> StepOptions:
        return getattr(self.steps, step)


class RecipeError(ValueError):
    """A recipe that does not validate; `str()` lists every problem, one per line."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: {len(problems)} problem(s)\n" + "\n".join(f"  - {p}" for p in problems))


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


def format_errors(err: ValidationError, model: type[BaseModel] = Recipe) -> list[str]:
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
    if not isinstance(data, dict):
        raise RecipeError(source, ["the recipe must be a mapping of keys to values"])
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        raise RecipeError(source, format_errors(e)) from None
