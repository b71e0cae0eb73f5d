"""The mix step's recipe section: the general sources, the ratio and the split.

WHY one place: the task, the planner and the tests read the same validated
config, and an unknown key is an error that lists the allowed ones.
"""
from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, model_validator

from infuse.operators.common.base import Strict
from infuse.operators.common.input_files import input_file

EXPORTS = ("llamafactory", "swift", "openai")
DOMAIN = "domain"  # the source name of the rows read from `qa`

Localised = str | dict[str, str]  # one value, or one per language: {zh: 莲花助手, en: LotusBot}


def _general_file_problems(option: str, path: str, owner: dict[str, Any]) -> list[str]:
    """validate's check of a general file (operators/mix/check.py, imported here late: it reads this module)."""
    from infuse.operators.mix.check import general_file_problems

    return general_file_problems(option, path, owner)


class GeneralSource(Strict):
    """One general dataset: a file (alpaca, sharegpt, messages; JSON, JSONL or Parquet) or a shipped set."""

    name: str | None = Field(None, description="the `source` of its rows; default: the builtin's name or the file's stem")
    path: str | None = input_file(None, description="a .json/.jsonl/.parquet file, relative to the directory you "
                                                    "run infuse from", problems=_general_file_problems)
    builtin: Literal["general_zh", "general_en", "identity"] | None = Field(
        None, description="a set shipped with infuse instead of a file")
    format: Literal["auto", "alpaca", "sharegpt", "messages"] = Field(
        "auto", description="row shape; auto: by each row's keys (conversations / messages / instruction)")
    columns: dict[str, str] = Field(default_factory=dict, description="our key -> the file's key, e.g. "
                                    "{instruction: question, output: answer, conversations: dialog}")
    weight: float = Field(1.0, gt=0, description="share of the general rows, relative to the other sources")
    kind: Literal["general", "identity"] | None = Field(None, description="identity for self-cognition sets "
                                                                          "(default: identity for the builtin one)")
    lang: Literal["zh", "en"] | None = Field(None, description="the rows' language; detected per row when empty")

    @model_validator(mode="after")
    def _one_origin(self) -> "GeneralSource":
        if (self.path is None) == (self.builtin is None):
            raise ValueError("give exactly one of `path` and `builtin`")
        if self.name == DOMAIN:
            raise ValueError(f"the name {DOMAIN!r} is the domain QA's own")
        return self

    @property
    def source_name(self) -> str:
        if self.name:
            return self.name
        if self.builtin:
            return self.builtin
        stem = (self.path or "").replace("\\", "/").rsplit("/", 1)[-1]
        return stem.split(".", 1)[0] or "general"

    @property
    def row_kind(self) -> str:
        return self.kind or ("identity" if self.builtin == "identity" else "general")


class IdentityValues(Strict):
    """Fills `{{name}}` and `{{author}}` in general rows (the identity templates)."""

    name: Localised | None = Field(None, description="the tuned model's name; or {zh: ..., en: ...}")
    author: Localised | None = Field(None, description="who made it; or {zh: ..., en: ...}")


def _default_general() -> list[GeneralSource]:
    return [GeneralSource(builtin="general_zh"), GeneralSource(builtin="general_en"),
            GeneralSource(builtin="identity", weight=0.2)]


class MixConfig(Strict):
    domain_ratio: float = Field(0.3, gt=0, le=1, description="share of domain rows in the final training mix "
                                                             "(design notes: 20-40%)")
    general: list[GeneralSource] = Field(default_factory=_default_general,
                                         description="general datasets mixed in; default: the shipped zh and en "
                                                     "sets and the identity templates")
    max_upsample: float = Field(3.0, ge=1, description="a source too small for its share is repeated up to this "
                                                      "many times its rows, never more")
    eval_ratio: float = Field(0.1, ge=0, lt=1, description="share of each source held out for eval (9:1)")
    eval_min_chunks: int | None = Field(None, ge=1, description="a document with at least this many chunks always "
                                                               "gets an eval chunk; default 1/eval_ratio")
    seed: int = Field(0, description="seeds the hash that splits and samples; same seed, same mix")
    identity: IdentityValues = Field(default_factory=IdentityValues,
                                     description="values for {{name}}/{{author}}; default: synthesize.identity's")
    exports: list[Literal["llamafactory", "swift", "openai"]] = Field(default_factory=lambda: list(EXPORTS))

    @model_validator(mode="after")
    def _unique_names(self) -> "MixConfig":
        names = [s.source_name for s in self.general]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"general sources need distinct names; repeated: {', '.join(dupes)} (set `name:`)")
        return self

    @property
    def min_doc_chunks(self) -> int:
        if self.eval_min_chunks is not None:
            return self.eval_min_chunks
        return math.ceil(1 / self.eval_ratio) if self.eval_ratio > 0 else 10**9
