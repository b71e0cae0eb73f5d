"""validate's check of a user pairs file, read as operators/preference/formats.py reads it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from infuse.operators.common.file_checks import read_text, row_problems, shown
from infuse.operators.preference.formats import PairsFileError, check_rows, pair_problem

VALIDATION = True  # checks a recipe file before the run: no step's cache key covers this module


def user_pairs_problems(option: str, path: str, _owner: dict[str, Any]) -> list[str]:
    """What stops read_user_pairs reading a file, and every row it would drop as malformed_pair: a .jsonl
    file's lines and a .json file's list items, each a pair."""
    text, problems = read_text(option, path)
    if text is None:
        return problems
    try:
        rows = check_rows(text, jsonl=Path(path).suffix == ".jsonl")
    except PairsFileError as e:
        return [f"{option}: {shown(path)} {e}"]
    return row_problems(option, path, rows, lambda _, row: pair_problem(row))
