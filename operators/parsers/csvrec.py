"""CSV / TSV records: the header row names the fields, every other row is one record."""
from __future__ import annotations

import csv
import io
from pathlib import PurePosixPath

from infuse.operators.common.base import OperatorError
from infuse.operators.parsers.document import ParsedDoc
from infuse.operators.parsers.jsonrec import bad_record
from infuse.operators.parsers.records import combine, render_record
from infuse.operators.parsers.textdecode import decode_records, has_bad_bytes


def _delimiter(text: str, path: str) -> str:
    """Tab for .tsv; else what the sniffer finds in the first 4 KiB, comma when it finds nothing."""
    if path.lower().endswith(".tsv"):
        return "\t"
    try:
        return csv.Sniffer().sniff(text[:4096], delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _rows(text: str, delimiter: str) -> list[list[str]]:
    """The non-blank rows, or OperatorError corrupt."""
    csv.field_size_limit(max(len(text), 131072))  # one big cell is valid CSV, not a corrupt file
    try:
        return [r for r in csv.reader(io.StringIO(text), delimiter=delimiter) if any(c.strip() for c in r)]
    except csv.Error as e:
        raise OperatorError("corrupt", f"invalid CSV: {e}") from e


def _fields(header: list[str], row: list[str]) -> dict[str, str]:
    """The row under the header's names; cells past the header are kept (as columnN), not dropped."""
    fields = {name: (row[i] if i < len(row) else "") for i, name in enumerate(header)}
    for i in range(len(header), len(row)):
        if row[i].strip():
            fields[f"column{i + 1}"] = row[i]
    return fields


class CsvParser:
    format = "csv"
    extensions = (".csv", ".tsv")
    multi = True

    def parse_records(self, data: bytes, path: str) -> list[ParsedDoc]:
        text, encoding = decode_records(data)  # a row of bad bytes is that record's reject
        rows = _rows(text, _delimiter(text, path))
        if not rows:
            return []
        if any(has_bad_bytes(c) for c in rows[0]):
            raise OperatorError("undecodable", "the header row holds bytes that are not valid UTF-8")
        header = [h.strip() or f"column{i + 1}" for i, h in enumerate(rows[0])]
        docs = []
        for index, row in enumerate(rows[1:]):
            if any(has_bad_bytes(c) for c in row):
                docs.append(bad_record(f"row {index + 1}: bytes that are not valid UTF-8 (the file's other rows are "
                                       f"UTF-8)", "undecodable"))
            else:
                docs.append(render_record(_fields(header, row), path, index, encoding=encoding))
        return docs

    def parse(self, data: bytes, path: str) -> ParsedDoc:
        return combine(self.parse_records(data, path), PurePosixPath(path).stem)
