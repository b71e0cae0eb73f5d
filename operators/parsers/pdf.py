"""PDF via pypdf: page texts joined, pages recorded, the outline becomes sections."""
from __future__ import annotations

import io
import re
from pathlib import PurePosixPath
from typing import Any

from pypdf import PdfReader
from pypdf.errors import PdfReadError

from infuse.operators.common.base import OperatorError
from infuse.operators.parsers.blocks import join_pages
from infuse.operators.parsers.document import Page, ParsedDoc
from infuse.operators.parsers.sections import build_sections


def _clean_page(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def _outline_entries(reader: PdfReader, items: list[Any], level: int, out: list[tuple[int, str, int]]) -> None:
    """Flatten pypdf's nested outline (a list where a sub-list follows its parent) to (level, title, page index)."""
    for item in items:
        if isinstance(item, list):
            _outline_entries(reader, item, level + 1, out)
            continue
        title = " ".join(str(getattr(item, "title", "") or "").split())
        try:
            page_index = reader.get_destination_page_number(item)
        except Exception:  # a dangling bookmark: skip it, keep the document
            page_index = None
        if title and page_index is not None and page_index >= 0:
            out.append((level, title, page_index))


def _find_heading(text: str, title: str, lo: int, hi: int) -> int | None:
    """Where the bookmark's title appears on its page (whitespace-insensitive), if it does."""
    pattern = r"\s*".join(re.escape(ch) for ch in title if not ch.isspace())
    if not pattern:
        return None
    m = re.compile(pattern).search(text, lo, hi)
    if not m:
        return None
    line_start = text.rfind("\n", 0, m.start()) + 1
    # "1 Foo" for bookmark "Foo": the section starts at its numbered line
    if line_start >= lo and re.fullmatch(r"[\d.\s]*", text[line_start : m.start()]):
        return line_start
    return m.start()


def _open(data: bytes) -> PdfReader:
    """The reader of a readable PDF (an empty password tried), or OperatorError corrupt / encrypted."""
    try:
        reader = PdfReader(io.BytesIO(data))
    except PdfReadError as e:
        raise OperatorError("corrupt", f"not a readable PDF: {e}") from e
    if reader.is_encrypted:
        try:
            ok = reader.decrypt("")
        except Exception as e:  # e.g. AES without the crypto backend
            raise OperatorError("encrypted", f"encrypted PDF that cannot be opened: {e}") from e
        if not ok:
            raise OperatorError("encrypted", "PDF needs a password")
    return reader


def _page_texts(reader: PdfReader) -> tuple[list[str], list[int]]:
    """Every page's cleaned text, and the numbers of the pages whose text could not be extracted."""
    try:
        page_objects = list(reader.pages)
    except Exception as e:
        raise OperatorError("corrupt", f"cannot read the page tree: {e}") from e
    texts: list[str] = []
    failed: list[int] = []
    for number, page in enumerate(page_objects, start=1):
        try:  # one bad page loses its text, not the document
            texts.append(_clean_page(page.extract_text() or ""))
        except Exception:
            texts.append("")
            failed.append(number)
    return texts, failed


def _outline(reader: PdfReader) -> list[tuple[int, str, int]]:
    entries: list[tuple[int, str, int]] = []
    try:
        _outline_entries(reader, list(reader.outline), 1, entries)
    except Exception:  # a broken outline should not lose the text
        return []
    return entries


def _heads(entries: list[tuple[int, str, int]], pages: list[Page], text: str) -> list[tuple[int, str, int]]:
    """(level, title, start) per bookmark: where its title appears on its page, else the page's start (never
    before the previous heading)."""
    heads: list[tuple[int, str, int]] = []
    last = 0
    for level, title, page_index in entries:
        if page_index >= len(pages):
            continue
        page = pages[page_index]
        lo = max(page.start, last)
        found = _find_heading(text, title, lo, page.end) if lo <= page.end else None
        start = found if found is not None else lo
        heads.append((level, title, start))
        last = start
    return heads


def _info_title(reader: PdfReader) -> str:
    try:
        return str((reader.metadata or {}).get("/Title") or "").strip()
    except Exception:
        return ""


class PdfParser:
    format = "pdf"
    extensions = (".pdf",)
    multi = False

    def parse(self, data: bytes, path: str) -> ParsedDoc:
        reader = _open(data)
        texts, failed = _page_texts(reader)
        text, pages = join_pages(texts)
        entries = _outline(reader)
        heads = _heads(entries, pages, text)
        first_line = next((line.strip() for line in text.split("\n") if line.strip()), "")
        title = _info_title(reader) or (heads[0][1] if heads else "") or first_line[:120] or PurePosixPath(path).stem
        return ParsedDoc(
            title=title,
            text=text,
            sections=build_sections(heads, len(text)),
            pages=pages,
            metadata={"page_count": len(pages), "outline_entries": len(entries), **({"failed_pages": failed} if failed else {})},
        )
