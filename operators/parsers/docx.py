"""DOCX via python-docx: heading styles build the section tree, tables become Markdown in place."""
from __future__ import annotations

from typing import Any

import io
import re
import zipfile
from pathlib import PurePosixPath

import docx
from docx.opc.exceptions import PackageNotFoundError
from docx.oxml.ns import qn
from docx.table import Table
from docx.text.paragraph import Paragraph

from infuse.operators.common.base import OperatorError
from infuse.operators.parsers.document import ParsedDoc
from infuse.operators.parsers.blocks import TextBuilder
from infuse.operators.parsers.tables import to_markdown

_HEADING = re.compile(r"^(?:heading|标题)\s*([1-9])$", re.IGNORECASE)


def heading_level(style_name: str) -> int | None:
    """Title is level 0 (the root the chapters hang under); Heading N is level N."""
    name = (style_name or "").strip()
    if name.lower() in ("title", "标题"):
        return 0
    m = _HEADING.match(name)
    return int(m.group(1)) if m else None


_P, _TBL, _SDT, _SDT_CONTENT = qn("w:p"), qn("w:tbl"), qn("w:sdt"), qn("w:sdtContent")
# a paragraph's text runs, those inside inline content controls included (python-docx's .text skips them)
_RUNS = "w:r | w:hyperlink | w:sdt/w:sdtContent/w:r | w:sdt/w:sdtContent/w:hyperlink"


def inner_blocks(element: Any, parent: Any) -> Any:
    """Paragraphs and tables in document order, also those inside content controls (`w:sdt`), which
    python-docx's iter_inner_content skips: forms and templates put whole sections in them."""
    for child in element.iterchildren():
        if child.tag == _P:
            yield Paragraph(child, parent)
        elif child.tag == _TBL:
            yield Table(child, parent)
        elif child.tag == _SDT:
            content = child.find(_SDT_CONTENT)
            if content is not None:
                yield from inner_blocks(content, parent)


def paragraph_text(p: Paragraph) -> str:
    if p._p.find(_SDT) is None:
        return p.text
    return "".join(e.text for e in p._p.xpath(_RUNS))


def cell_text(cell: Any) -> str:
    """A cell's paragraphs and, inline, the text of tables nested in it (cell.text skips those)."""
    parts = []
    for block in inner_blocks(cell._tc, cell):
        if isinstance(block, Table):
            parts.append(" / ".join(" ".join(c for c in row if c) for row in table_rows(block)))
        elif paragraph_text(block).strip():
            parts.append(paragraph_text(block))
    return "\n".join(parts)


def table_rows(table: Table) -> list[list[str]]:
    """Rows of cell texts; a merged cell is written once, its other grid positions left empty."""
    rows = []
    for row in table.rows:
        out, previous = [], None
        for cell in row.cells:
            out.append("" if cell._tc is previous else cell_text(cell))
            previous = cell._tc
        rows.append(out)
    return rows


class DocxParser:
    format = "docx"
    extensions = (".docx",)
    multi = False

    def parse(self, data: bytes, path: str) -> ParsedDoc:
        try:
            document = docx.Document(io.BytesIO(data))
        except (zipfile.BadZipFile, PackageNotFoundError, KeyError) as e:
            raise OperatorError("corrupt", f"not a readable DOCX: {e}") from e
        out = TextBuilder()
        tables = 0
        in_list = False
        for block in inner_blocks(document.element.body, document._body):
            if isinstance(block, Table):
                tables += 1
                out.add(to_markdown(table_rows(block)))
                in_list = False
                continue
            style = block.style.name if block.style is not None else ""
            level = heading_level(style)
            text = paragraph_text(block)
            if not text.strip():
                continue
            is_list = style.startswith(("List Bullet", "List Number"))
            if level is not None:
                out.heading(level, text)
            elif is_list:
                marker = "- " if style.startswith("List Bullet") else "1. "
                out.add(marker + text.strip(), sep="\n" if in_list else "\n\n")
            else:
                out.add(text)
            in_list = is_list
        text = out.text()
        core_title = (document.core_properties.title or "").strip()
        title = core_title or (out.heads[0][1] if out.heads else "") or PurePosixPath(path).stem
        return ParsedDoc(title=title, text=text, sections=out.sections(), metadata={"tables": tables})
