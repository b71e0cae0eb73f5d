"""Checks of the files a recipe names, shared by the steps' `check()` and the operators' readers.

Every problem names the option, the file and the line, so the recipe's author knows what to fix before any
work is done: `user_questions: eval.jsonl line 7: not valid JSON (...)`; the CLI puts `steps.<step>.` before
it. An option declared with input_files.input_file gets the common checks (there, UTF-8, JSON lines) from the
Step base; an operator whose reader needs more passes its own `problems` function there.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable

from infuse.operators.common.jsonl import parse_lines

VALIDATION = True  # checks and fingerprints recipe files: no step's cache key covers this module

MAX_BAD_LINES = 5  # bad lines listed per file; the rest are counted


def shown(path: str | Path) -> str:
    """A path as the user wrote it, as near as can be: relative to here when it is under here."""
    p = str(path)
    return os.path.relpath(p) if p.startswith(os.getcwd() + os.sep) else p


def file_problem(option: str, path: str | Path, suffixes: tuple[str, ...] = ()) -> str | None:
    """Why `path` cannot be read as the file `option` names (None: it can)."""
    p = Path(path)
    if not p.exists():
        return (f"{option}: no such file: {shown(p)} (relative paths are relative to the directory you run "
                f"infuse from)")
    if not p.is_file():
        return f"{option}: {shown(p)} is a folder, not a file"
    if suffixes and p.suffix.lower() not in suffixes:
        return f"{option}: {shown(p)} is not a {', '.join(suffixes)} file"
    try:
        with p.open("rb") as f:
            f.read(1)
    except OSError as e:
        return f"{option}: {shown(p)} cannot be read ({e.strerror or e})"
    return None


def read_text(option: str, path: str | Path, lenient: bool = False) -> tuple[str | None, list[str]]:
    """The file's text, or the problems that stop it being read. `lenient`: as mix reads general sets (a BOM
    is dropped, other encodings detected); else strict UTF-8, as the steps that read user files do."""
    problem = file_problem(option, path)
    if problem:
        return None, [problem]
    raw = Path(path).read_bytes()
    try:
        return raw.decode("utf-8-sig" if lenient else "utf-8"), []
    except UnicodeDecodeError as e:
        if lenient:
            from infuse.operators.parsers.textdecode import decode_text

            return decode_text(raw)[0], []
        return None, [f"{option}: {shown(path)} is not UTF-8 text (byte {e.start}: {raw[e.start:e.start + 1]!r})"]


def json_error(e: json.JSONDecodeError) -> str:
    return f"not valid JSON ({e.msg}, column {e.colno})"


def jsonl_rows(text: str, split_lines: bool = True) -> list[tuple[str, Any]]:
    """(`line N`, value) for every non-blank line; a line that is not JSON gives its error, as a str in a
    1-tuple, in place of the value. `split_lines=False`: split on newlines only, as operators/common/jsonl.py
    reads (str.splitlines() also cuts at U+2028 inside strings); True: str.splitlines(), for the steps whose
    reader still splits that way, so that validate and the run agree on line numbers."""
    if not split_lines:
        return [(f"line {line.number}", line.value if line.ok else (line.message,)) for line in parse_lines(text)]
    out: list[tuple[str, Any]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((f"line {n}", json.loads(line)))
        except json.JSONDecodeError as e:
            out.append((f"line {n}", (json_error(e),)))
    return out


def row_problems(option: str, path: str | Path, rows: Iterable[tuple[str, Any]],
                 problem: Callable[[str, Any], str | None]) -> list[str]:
    """One message per bad row (at most MAX_BAD_LINES, then a count): its JSON error, or what
    `problem(where, value)` says of the parsed value."""
    bad = []
    for where, value in rows:
        why = value[0] if isinstance(value, tuple) else problem(where, value)
        if why:
            bad.append(f"{option}: {shown(path)} {where}: {why}")
    if len(bad) > MAX_BAD_LINES:
        bad = bad[:MAX_BAD_LINES] + [f"{option}: {shown(path)}: {len(bad) - MAX_BAD_LINES} more bad lines like these"]
    return bad
