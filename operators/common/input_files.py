"""Recipe options that name a file the step reads (general text, user pairs, prompt overrides).

Declare one with `input_file(...)` on a `str | None` or `list[str]` option, at
any depth of the step's Options (a nested model, a list of them). The Step base
then does for every such file what steps used to do each on its own:

- config(): the path resolved against the directory infuse runs from;
- key_config(): the path left out (moving a file changes nothing) and
  fingerprint(): its content's sha256 put in (editing it recomputes the step);
- check(): the file exists, is a readable UTF-8 file, and a .jsonl file's
  every line parses (with `jsonl_fields`: is an object with those string
  fields), each problem as `option: path line N: ...` (file_checks.py); or,
  where the operator's reader needs more (other formats, fields that depend
  on the row), what its own `problems(option, path, owner)` says.

It lives with the operators so that their config models can declare it; the
Step base (tasks/framework/step.py) is what acts on it.
"""
from __future__ import annotations

import hashlib
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, Field
from pydantic.fields import FieldInfo

from infuse.operators.common.file_checks import jsonl_rows, read_text, row_problems

VALIDATION = True  # checks and fingerprints recipe files: no step's cache key covers this module

MARK = "input_file"  # the json_schema_extra key that marks an option as a file the step reads

# (option key, path, the dict that holds the option) -> problems; the dict lets a check read sibling options
Problems = Callable[[str, str, dict[str, Any]], list[str]]


@dataclass(frozen=True)
class FileCheck:
    """Kept in the field's metadata: the operator's own check of a file, in place of the common one."""

    problems: Problems


def input_file(default: Any = None, *, description: str = "", jsonl_fields: tuple[str, ...] = (),
               problems: Problems | None = None, **kw: Any) -> Any:
    """A pydantic Field for an option naming a file (or, on a list, files) the step reads.
    `jsonl_fields`: the string fields each line of a .jsonl file must have; `problems`: the reader's own check
    (what stops it reading the file, and every row it would drop), used in place of the common one."""
    extra = {MARK: {"jsonl_fields": list(jsonl_fields)}}
    if "default_factory" in kw:
        field = Field(description=description, json_schema_extra=extra, **kw)
    else:
        field = Field(default, description=description, json_schema_extra=extra, **kw)
    if problems is not None:
        field.metadata.append(FileCheck(problems))
    return field


@dataclass(frozen=True)
class FileOption:
    """One marked option in a config: `data[field]` holds its path (or list of paths)."""

    option: str  # the option's key as messages show it: `general_text`, `general.1.path`
    data: dict[str, Any]
    field: str
    jsonl_fields: tuple[str, ...]
    check: Problems | None = None

    def files(self) -> Iterator[tuple[str, str]]:
        """(option key, path) per file: `general_text.0` for the first of a list."""
        value = self.data.get(self.field)
        if isinstance(value, str):
            yield self.option, value
        elif isinstance(value, list):
            yield from ((f"{self.option}.{i}", p) for i, p in enumerate(value) if isinstance(p, str))


def file_options(model: type[BaseModel], data: dict[str, Any], prefix: str = "") -> Iterator[FileOption]:
    """Every marked option of `model` in `data` (its config or key dump), nested models included."""
    for name, info in model.model_fields.items():
        mark = _mark(info)
        if mark is not None:
            check = next((m.problems for m in info.metadata if isinstance(m, FileCheck)), None)
            yield FileOption(prefix + name, data, name, tuple(mark.get("jsonl_fields", ())), check)
            continue
        nested = _nested_model(info.annotation)
        value = data.get(name)
        if nested is None or value is None:
            continue
        if isinstance(value, dict):
            yield from file_options(nested, value, f"{prefix}{name}.")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    yield from file_options(nested, item, f"{prefix}{name}.{i}.")


def _mark(info: FieldInfo) -> dict[str, Any] | None:
    extra = info.json_schema_extra
    return extra.get(MARK) if isinstance(extra, dict) else None


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model an option holds (itself, in a list, or optional), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


# ---- what the Step base does with them -------------------------------------------------------------------------

def resolve_paths(model: type[BaseModel], cfg: dict[str, Any]) -> None:
    """Every marked path made absolute, against the directory infuse runs from (in place)."""
    for opt in file_options(model, cfg):
        value = opt.data.get(opt.field)
        if isinstance(value, str):
            opt.data[opt.field] = str(Path(value).resolve())
        elif isinstance(value, list):
            opt.data[opt.field] = [str(Path(p).resolve()) if isinstance(p, str) else p for p in value]


def drop_paths(model: type[BaseModel], dump: dict[str, Any]) -> None:
    """The marked options taken out of a key dump (in place): a file's place is not part of a cache key."""
    for opt in list(file_options(model, dump)):
        opt.data.pop(opt.field, None)


def fingerprints(model: type[BaseModel], cfg: dict[str, Any]) -> dict[str, str]:
    """option key -> sha256 of the file's bytes (`missing:<path>` when it cannot be read)."""
    return {key: _sha256(path) for opt in file_options(model, cfg) for key, path in opt.files()}


def _sha256(path: str) -> str:
    p = Path(path)
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else f"missing:{path}"


def problems(model: type[BaseModel], cfg: dict[str, Any]) -> list[str]:
    """What keeps each marked file from being read as the step reads it."""
    out: list[str] = []
    for opt in file_options(model, cfg):
        for key, path in opt.files():
            out += opt.check(key, path, opt.data) if opt.check else file_problems(key, path, opt.jsonl_fields)
    return out


def file_problems(option: str, path: str, jsonl_fields: tuple[str, ...] = ()) -> list[str]:
    """The file is there, UTF-8, and (a .jsonl file) every line JSON, an object with `jsonl_fields` strings."""
    text, bad = read_text(option, path)
    if text is None or Path(path).suffix != ".jsonl":
        return bad
    rows = jsonl_rows(text, split_lines=False)
    return row_problems(option, path, rows, lambda _where, row: _lacks(row, jsonl_fields))


def _lacks(row: Any, fields: tuple[str, ...]) -> str | None:
    if not fields:
        return None
    missing = [f for f in fields if not (isinstance(row, dict) and isinstance(row.get(f), str))]
    return ", ".join(f"no `{f}` string" for f in missing) or None
