"""JSON (a list of objects, or one object) and JSONL records."""
from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

from infuse.operators.common.base import OperatorError
from infuse.operators.common.jsonl import Line, parse_lines, split_lines
from infuse.operators.parsers.document import ParsedDoc
from infuse.operators.parsers.records import combine, render_record
from infuse.operators.parsers.textdecode import decode_records, decode_text, has_bad_bytes


BAD = "\x00infuse_bad_record"  # marks a record that failed to parse (a key no JSON text can hold by accident)


def bad_record(message: str, reason: str = "corrupt") -> ParsedDoc:
    """A placeholder the ingest step turns into a reject (corrupt, undecodable) with the record's own id."""
    return ParsedDoc(title="", text="", metadata={"reject": {"reason": reason, "message": message}})


def undecodable_line(number: int) -> str:
    return f"line {number}: bytes that are not valid UTF-8 (the file's other records are UTF-8)"


def _as_fields(item: Any) -> dict[str, Any]:
    return item if isinstance(item, dict) else {"value": item}


class JsonParser:
    format = "json"
    extensions = (".json",)
    multi = True

    def load(self, data: bytes) -> tuple[list[dict[str, Any]], str]:
        text, encoding = decode_text(data)
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise OperatorError("corrupt", f"invalid JSON: {e}") from e
        if isinstance(value, dict) and len(value) == 1:  # {"data": [{...}, ...]}: the list is the records
            inner = next(iter(value.values()))
            if isinstance(inner, list) and inner and all(isinstance(v, dict) for v in inner):
                value = inner
        items = value if isinstance(value, list) else [value]
        return [_as_fields(v) for v in items], encoding

    def parse_records(self, data: bytes, path: str) -> list[ParsedDoc]:
        items, encoding = self.load(data)
        return [bad_record(*f[BAD]) if BAD in f else render_record(f, path, i, encoding=encoding)
                for i, f in enumerate(items)]

    def parse(self, data: bytes, path: str) -> ParsedDoc:
        return combine(self.parse_records(data, path), PurePosixPath(path).stem)


class JsonlParser(JsonParser):
    format = "jsonl"
    extensions = (".jsonl", ".ndjson")

    def load(self, data: bytes) -> tuple[list[dict[str, Any]], str]:
        text, encoding = decode_records(data)  # a line of bad bytes is that record's reject
        raw = split_lines(text)
        items = [_jsonl_item(line, raw[line.number - 1]) for line in parse_lines(text)]
        if items and all(BAD in f for f in items):
            message, reason = items[0][BAD]
            raise OperatorError(reason, f"no line is a readable record ({message})")
        return items, encoding


def _jsonl_item(line: Line, raw: str) -> dict[str, Any]:
    """One JSONL line's record, or a BAD marker: undecodable bytes, or not JSON (one bad line is one rejected
    record, not a lost file)."""
    if has_bad_bytes(raw):
        return {BAD: (undecodable_line(line.number), "undecodable")}
    if not line.ok:
        return {BAD: (f"invalid JSON on line {line.number}: {line.error}", "corrupt")}
    return _as_fields(line.value)
