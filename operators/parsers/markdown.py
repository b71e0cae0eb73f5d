"""Markdown: text kept as is; ATX and setext headings (outside fenced code) build the tree."""
from __future__ import annotations

import re
from pathlib import PurePosixPath

from infuse.operators.parsers.document import ParsedDoc
from infuse.operators.parsers.sections import build_sections
from infuse.operators.parsers.textdecode import decode_text

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_NOT_PARAGRAPH = re.compile(r"^ {0,3}(?:[-*+>]|\d+[.)]|#|\||```|~~~)|^\s*$|^ {4,}")


def markdown_headings(text: str) -> list[tuple[int, str, int]]:
    """(level, heading, start offset) for each heading, skipping fenced code blocks."""
    heads: list[tuple[int, str, int]] = []
    fence: str | None = None
    pos = 0
    prev: tuple[str, int] | None = None  # previous line if it could be a setext heading's text
    for line in text.split("\n"):
        start, pos = pos, pos + len(line) + 1
        body = line.rstrip("\r")
        m = _FENCE.match(body)
        if fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not body.strip()[len(m.group(1)):].strip():
                fence = None
            prev = None
            continue
        if m:
            fence = m.group(1)
            prev = None
            continue
        atx = _ATX.match(body)
        if atx:
            title = (atx.group(2) or "").strip()
            if title:
                heads.append((len(atx.group(1)), title, start))
            prev = None
            continue
        setext = _SETEXT.match(body)
        if setext and prev is not None:
            heads.append((1 if setext.group(1)[0] == "=" else 2, prev[0], prev[1]))
            prev = None
            continue
        prev = None if _NOT_PARAGRAPH.match(body) else (body.strip(), start)
    return heads


class MarkdownParser:
    format = "markdown"
    extensions = (".md", ".markdown", ".mdx")
    multi = False

    def parse(self, data: bytes, path: str) -> ParsedDoc:
        text, encoding = decode_text(data)
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        heads = markdown_headings(text)
        title = heads[0][1] if heads else PurePosixPath(path).stem
        for level, head, _ in heads:
            if level == 1:
                title = head
                break
        return ParsedDoc(title=title, text=text, sections=build_sections(heads, len(text)),
                         metadata={"encoding": encoding})
