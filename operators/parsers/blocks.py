"""Assemble text from blocks while recording heading offsets (docx, html, epub) or page spans (pdf, pptx)."""
from __future__ import annotations

from infuse.operators.parsers.document import Page, Section
from infuse.operators.parsers.sections import build_sections


class TextBuilder:
    """Blocks are joined by a blank line; headings remember where they start."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.heads: list[tuple[int, str, int]] = []

    def add(self, block: str, sep: str = "\n\n") -> int:
        """Append a block; sep is what goes before it (a single newline keeps list items together)."""
        block = block.strip("\n")
        if not block.strip():
            return self.length
        if self.parts:
            self.parts.append(sep)
            self.length += len(sep)
        start = self.length
        self.parts.append(block)
        self.length += len(block)
        return start

    def heading(self, level: int, title: str) -> None:
        title = " ".join(title.split())
        if title:
            self.heads.append((level, title, self.add(title)))

    def text(self) -> str:
        return "".join(self.parts)

    def sections(self) -> list[Section]:
        return build_sections(self.heads, self.length)


def join_pages(texts: list[str]) -> tuple[str, list[Page]]:
    """Page (or slide) texts joined by a blank line, and each page's span in the result, numbered from 1."""
    pages: list[Page] = []
    pos = 0
    for number, page_text in enumerate(texts, start=1):
        if number > 1:
            pos += 2  # the blank line before it
        pages.append(Page(number, pos, pos + len(page_text)))
        pos += len(page_text)
    return "\n\n".join(texts), pages
