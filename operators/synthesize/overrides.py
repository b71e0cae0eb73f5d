"""Prompt override files a recipe names (`prompt_overrides`): their part of the step key, and what
`infuse validate` says about them before a run reads them."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import yaml

from infuse.operators.prompts import PROMPT_DIR


def digests(overrides: dict[str, str]) -> dict[str, str]:
    """The sha256 of each named file (its contents shape the samples), or `missing:PATH`."""
    out = {}
    for name, path in sorted(overrides.items()):
        p = Path(path)
        out[name] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else f"missing:{path}"
    return out


def packaged_names() -> list[str]:
    """The names of the packaged prompts, which an override may replace."""
    return sorted({p.name.split(".", 1)[0] for p in PROMPT_DIR.glob("*.v*.*") if p.suffix in (".yaml", ".yml", ".txt")})


def unknown_name(option: str, key: str, names: list[str]) -> str | None:
    """The problem with an override key (`name` or `name.lang`) that names no packaged prompt."""
    name = key.split(".", 1)[0]
    if name in names:
        return None
    return (f"{option}: no packaged prompt is called {name!r}, so the file would replace nothing; "
            f"names: {', '.join(names)}")


def content_problem(option: str, path: str, shown: str, text: str) -> str | None:
    """Why a file's text cannot be a prompt: a .yaml/.yml file must hold a mapping (with system and user);
    any other file is the user template as it is. `shown` is the path as the message names it."""
    if Path(path).suffix not in (".yaml", ".yml"):
        return None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        return f"{option}: {shown}{where}: not valid YAML ({getattr(e, 'problem', None) or e})"
    if data is not None and not isinstance(data, dict):
        return (f"{option}: {shown}: a prompt YAML is a mapping with `system` and `user` keys; this holds a "
                f"{type(data).__name__}")
    return None


def problems(overrides: dict[str, str], read: Callable[[str, str], tuple[str | None, list[str]]],
             shown: Callable[[str], str]) -> list[str]:
    """Every override's problems: its name, then its file. `read(option, path)` gives the file's text or why
    it cannot be read; `shown(path)` is the path as a message names it (the step's own file checks)."""
    names = packaged_names()
    out: list[str] = []
    for key, path in sorted(overrides.items()):
        option = f"prompt_overrides.{key}"
        unknown = unknown_name(option, key, names)
        if unknown:
            out.append(unknown)
            continue
        text, bad = read(option, path)
        problem = content_problem(option, path, shown(path), text) if text is not None else None
        out += bad if text is None else [problem] if problem else []
    return out
