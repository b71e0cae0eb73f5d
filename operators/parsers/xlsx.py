"""XLSX records via openpyxl: per sheet, the first non-empty row is the header."""
from __future__ import annotations

import io
import zipfile
from pathlib import PurePosixPath

from openpyxl import load_workbook

from infuse.operators.common.base import OperatorError
from infuse.operators.parsers.document import ParsedDoc
from infuse.operators.parsers.records import combine, render_record


class XlsxParser:
    format = "xlsx"
    extensions = (".xlsx", ".xlsm")
    multi = True

    def parse_records(self, data: bytes, path: str) -> list[ParsedDoc]:
        try:
            book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except (zipfile.BadZipFile, KeyError, OSError) as e:
            raise OperatorError("corrupt", f"not a readable XLSX: {e}") from e
        docs: list[ParsedDoc] = []
        try:
            for sheet in book.worksheets:
                header: list[str] | None = None
                for row in sheet.iter_rows(values_only=True):
                    if not any(c is not None and str(c).strip() for c in row):
                        continue
                    if header is None:
                        header = [str(c).strip() if c is not None and str(c).strip() else f"column{i + 1}"
                                  for i, c in enumerate(row)]
                        continue
                    fields = {name: (row[i] if i < len(row) else None) for i, name in enumerate(header)}
                    docs.append(render_record(fields, path, len(docs), sheet=sheet.title))
        finally:
            book.close()
        return docs

    def parse(self, data: bytes, path: str) -> ParsedDoc:
        return combine(self.parse_records(data, path), PurePosixPath(path).stem)
