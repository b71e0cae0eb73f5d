"""Format families, the one table: which document formats are records, code or logs.

A parser names its document's `format` (pdf, markdown, json, code, ...).
Chunking and synthesis treat formats by family: records are never split
mid-record, code is split at function boundaries, logs pack whole lines,
and a recipe's `by_format: {code: ...}` covers every code format.
"""
from __future__ import annotations

FAMILIES: dict[str, frozenset[str]] = {
    "record": frozenset({"json", "jsonl", "csv", "tsv", "xlsx", "xls", "records"}),
    "code": frozenset({"code", "py", "c", "h", "cpp", "cc", "hpp", "java", "js", "ts", "go", "rs", "rb", "php",
                       "cs", "kt", "swift", "scala", "sh", "sql", "lua", "r", "m"}),
    "log": frozenset({"log", "logs"}),
}
# the recipe key under `synthesize.by_format` that stands for a whole family
FAMILY_KEYS = {"record": "json", "code": "code", "log": "log"}
ALIASES = {"md": "markdown", "markdown": "md", "htm": "html"}


def family(fmt: str | None) -> str:
    """'record', 'code', 'log' or 'text'."""
    fmt = (fmt or "").lower()
    for name, members in FAMILIES.items():
        if fmt in members:
            return name
    return "text"
