"""validate's check of a general file, read as operators/mix/load.py reads it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from infuse.operators.common.base import OperatorError
from infuse.operators.common.file_checks import file_problem, row_problems, shown
from infuse.operators.mix.config import GeneralSource
from infuse.operators.mix.load import check_rows, row_problem

VALIDATION = True  # checks a recipe file before the run: no step's cache key covers this module


def general_file_problems(option: str, path: str, owner: dict[str, Any]) -> list[str]:
    """What stops mix reading a general file: a .json document or JSON Lines, or Parquet, in any text
    encoding; every row alpaca, sharegpt or messages (the source's `format` and `columns`, from `owner`)."""
    src = GeneralSource.model_validate(owner)
    problem = file_problem(option, path, (".json", ".jsonl", ".ndjson", ".parquet"))
    if problem:
        return [problem]
    try:
        rows = check_rows(Path(path))
    except OperatorError as e:
        return [f"{option}: {shown(path)}: {e.message}"]
    if not rows:
        return [f"{option}: {shown(path)} has no rows"]
    return row_problems(option, path, rows, lambda _, row: row_problem(row, src))
