"""Parser registry: one parser per format, chosen by file extension (case-insensitive).

Every parser has `format`, `extensions` and `parse(data, path) -> ParsedDoc`.
Record formats (JSON, JSONL, CSV, XLSX) set `multi = True` and also offer
`parse_records(data, path) -> list[ParsedDoc]`, one document per record; the
ingest step uses that for them. Row-level failures raise OperatorError with a
reason code (corrupt, encrypted, binary_content, undecodable).
"""
from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from infuse.operators.parsers.code import CodeParser
from infuse.operators.parsers.csvrec import CsvParser
from infuse.operators.parsers.docx import DocxParser
from infuse.operators.parsers.epub import EpubParser
from infuse.operators.parsers.html import HtmlParser
from infuse.operators.parsers.jsonrec import JsonlParser, JsonParser
from infuse.operators.parsers.log import LogParser
from infuse.operators.parsers.markdown import MarkdownParser
from infuse.operators.parsers.pdf import PdfParser
from infuse.operators.parsers.pptx import PptxParser
from infuse.operators.parsers.txt import TxtParser
from infuse.operators.parsers.xlsx import XlsxParser

PARSERS: list[Any] = [
    PdfParser(), DocxParser(), PptxParser(), EpubParser(), MarkdownParser(), HtmlParser(), TxtParser(),
    JsonParser(), JsonlParser(), CsvParser(), XlsxParser(), CodeParser(), LogParser(),
]

_BY_EXTENSION = {ext: p for p in PARSERS for ext in p.extensions}


def parser_for(path: str) -> Any | None:
    """The parser for this file name, or None for an unsupported extension."""
    return _BY_EXTENSION.get(PurePosixPath(str(path)).suffix.lower())
