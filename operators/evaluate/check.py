"""validate's check of the user question file, read as operators/evaluate/questions.py reads it."""
from __future__ import annotations

from typing import Any

from infuse.operators.common.file_checks import jsonl_rows, read_text, row_problems, shown
from infuse.operators.evaluate.questions import read_user_questions

VALIDATION = True  # checks a recipe file before the run: no step's cache key covers this module


def user_questions_problems(option: str, path: str, _owner: dict[str, Any]) -> list[str]:
    """The file is there, UTF-8, and every line a JSON object with the fields evaluate reads (the step itself
    would only reject a bad line, silently lowering the count of user questions)."""
    text, problems = read_text(option, path)
    if text is None:
        return problems
    rows = jsonl_rows(text, split_lines=False)  # the lines the reader sees (operators/common/jsonl.py)
    if not rows:
        return [f"{option}: {shown(path)} has no questions"]
    _, rejects = read_user_questions(path)  # the step's own reader says what a row lacks
    lacks = {f"line {r.id.rpartition('#')[2]}": r.message.partition(": ")[2] for r in rejects}
    return row_problems(option, path, rows, lambda where, _: lacks.get(where))
