"""Logs: text as is, with line count, level counts and time span for later summarisation."""
from __future__ import annotations

import re
from datetime import datetime
from pathlib import PurePosixPath

from infuse.operators.parsers.document import ParsedDoc
from infuse.operators.parsers.textdecode import decode_text
from infuse.operators.parsers.txt import normalise_newlines

_LEVEL = re.compile(r"\b(FATAL|CRITICAL|ERROR|ERR|WARNING|WARN|INFO|DEBUG|TRACE)\b")
_LEVEL_NAME = {"FATAL": "ERROR", "CRITICAL": "ERROR", "ERR": "ERROR", "WARNING": "WARN"}
_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})")


def log_stats(text: str) -> dict[str, object]:
    levels = {"ERROR": 0, "WARN": 0, "INFO": 0, "DEBUG": 0, "TRACE": 0}
    first: datetime | None = None
    last: datetime | None = None
    lines = [line for line in text.split("\n") if line.strip()]
    for line in lines:
        m = _LEVEL.search(line[:200])
        if m:
            levels[_LEVEL_NAME.get(m.group(1), m.group(1))] += 1
        t = _TIME.search(line[:80])
        if t:
            try:
                when = datetime.fromisoformat(f"{t.group(1)}T{t.group(2)}")
            except ValueError:
                continue
            first = when if first is None or when < first else first
            last = when if last is None or when > last else last
    stats: dict[str, object] = {"lines": len(lines), "levels": levels}
    if first and last:
        stats["time_start"] = first.isoformat()
        stats["time_end"] = last.isoformat()
        stats["time_span_s"] = int((last - first).total_seconds())
    return stats


class LogParser:
    format = "log"
    extensions = (".log",)
    multi = False

    def parse(self, data: bytes, path: str) -> ParsedDoc:
        text, encoding = decode_text(data)
        text = normalise_newlines(text)
        return ParsedDoc(title=PurePosixPath(path).name, text=text,
                         metadata={"encoding": encoding, **log_stats(text)})
