"""Tables from any format become GitHub-style Markdown so chunks keep their shape."""
from __future__ import annotations


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return " ".join(text.split()).replace("|", "\\|")


def to_markdown(rows: list[list[object]]) -> str:
    """First row is the header. Ragged rows are padded; empty input gives ''."""
    rows = [[_cell(c) for c in r] for r in rows if any(str(c or "").strip() for c in r)]
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join(["---"] * width) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)
