"""`infuse show`'s table head: one line per row, cut to the terminal's width, or every value whole.

A document's text in one table cell makes a table no terminal can show, so
by default each cell is one line (newlines shown as ⏎) and the widest columns
are narrowed until the row fits; `--full` prints each row as a block with
every value whole instead.
"""
from __future__ import annotations

import json
import shutil
from typing import Any

from wcwidth import wcswidth, wcwidth

MIN_COL = 6  # no column is cut narrower than this
SEP = "  "


def terminal_width(default: int = 120) -> int:
    return shutil.get_terminal_size((default, 24)).columns


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _width(text: str) -> int:
    w = wcswidth(text)
    return w if w >= 0 else len(text)  # control characters: count them as one column each


def _cut(text: str, width: int) -> str:
    """At most `width` terminal columns (CJK characters take two), with … where it was cut."""
    if _width(text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        w = max(wcwidth(ch), 0)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def render(rows: list[dict[str, Any]], columns: list[str], width: int | None = None, full: bool = False) -> str:
    """Rows as text: an aligned table fitted to `width` (default: the terminal's), or blocks when full."""
    if not rows:
        return "(no rows)"
    if full:
        return "\n\n".join(_block(i, row, columns) for i, row in enumerate(rows))
    cells = [[_cell(r.get(c)).replace("\r\n", "⏎").replace("\n", "⏎").replace("\t", " ") for c in columns]
             for r in rows]
    widths = [max([_width(c)] + [_width(row[k]) for row in cells]) for k, c in enumerate(columns)]
    widths = _fit(widths, (width or terminal_width()) - len(SEP) * (len(columns) - 1))
    return "\n".join(SEP.join(_pad(_cut(v, w), w) for v, w in zip(line, widths)).rstrip()
                     for line in [columns, *cells])


def _block(i: int, row: dict[str, Any], columns: list[str]) -> str:
    """One row with every value whole, a multi-line value under its column's name."""
    lines = [f"-- row {i}"]
    for c in columns:
        value = _cell(row.get(c))
        lines.append(f"{c}: {value}" if "\n" not in value else f"{c}:\n{value}")
    return "\n".join(lines)


def _fit(widths: list[int], budget: int) -> list[int]:
    """Column widths that fit the budget: the widest column narrowed first, none below MIN_COL."""
    widths = list(widths)
    while sum(widths) > budget:
        k = max(range(len(widths)), key=lambda j: widths[j])
        if widths[k] <= MIN_COL:
            break  # too many columns for this terminal: lines wrap, but every column stays readable
        others = sum(widths) - widths[k]
        widths[k] = max(MIN_COL, min(widths[k] - 1, budget - others))
    return widths
