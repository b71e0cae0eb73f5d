"""The one JSON Lines reader: tolerant, one result per non-blank line, a bad line is that line's error.

Lines are split on newlines only: `str.splitlines()` also cuts at U+2028,
U+0085 and other separators that may sit inside a JSON string, which turns
one good record into two bad ones. A line that is not JSON does not stop the
read: it comes back with its error, for the caller to turn into a reject (a
run) or a message naming the line (`infuse validate`).
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Line:
    """One non-blank line: its 1-based number, and its value or why it has none."""

    number: int
    value: Any = None
    error: json.JSONDecodeError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def message(self) -> str:
        """`not valid JSON (Expecting value, column 1)`, or "" for a good line."""
        return f"not valid JSON ({self.error.msg}, column {self.error.colno})" if self.error else ""


def split_lines(text: str) -> list[str]:
    """The text's lines, split at \\n (and \\r\\n) only."""
    return text.replace("\r\n", "\n").split("\n")


def parse_lines(text: str) -> Iterator[Line]:
    """Every non-blank line of the text, parsed."""
    for number, line in enumerate(split_lines(text), start=1):
        if not line.strip():
            continue
        try:
            yield Line(number, json.loads(line))
        except json.JSONDecodeError as e:
            yield Line(number, None, e)


def read_jsonl(path: str | Path) -> list[Line]:
    """Every non-blank line of a UTF-8 JSON Lines file, parsed (a missing or undecodable file raises)."""
    return list(parse_lines(Path(path).read_text(encoding="utf-8")))
