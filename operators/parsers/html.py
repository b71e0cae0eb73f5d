"""HTML via BeautifulSoup+lxml: main text only, h1..h6 as sections, tables as Markdown, <pre> as fenced code.

A `<pre>` block is written as a Markdown code fence (with its language from a
`language-x` / `lang-x` class), so the chunker gives it chunks of kind code
just as it does for a fence in a Markdown file.
"""
from __future__ import annotations

import re
from pathlib import PurePosixPath

from bs4 import BeautifulSoup, Comment, Doctype, NavigableString, ProcessingInstruction, Tag

from infuse.operators.parsers.document import ParsedDoc
from infuse.operators.parsers.blocks import TextBuilder
from infuse.operators.parsers.tables import to_markdown
from infuse.operators.parsers.textdecode import decode_text

_DROP = ("script", "style", "nav", "aside", "noscript", "template", "iframe", "form", "svg")
_PAGE_CHROME = ("header", "footer")  # dropped unless inside <main>/<article> (an article's own header has its h1)
_HEADINGS = {f"h{i}": i for i in range(1, 7)}
_BLOCKS = {
    "p", "div", "section", "article", "main", "ul", "ol", "li", "dl", "dt", "dd", "blockquote",
    "figure", "figcaption", "body", "tr", "address", "details", "summary", "hr", "br",
}
_LANG_CLASS = re.compile(r"(?:language|lang)-([\w+#.-]+)", re.IGNORECASE)
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_\-]+)""", re.IGNORECASE)


def code_language(pre: Tag) -> str:
    """`python` for <pre class="language-python"> or <pre><code class="lang-python">, else ""."""
    for tag in (pre, pre.find("code")):
        if isinstance(tag, Tag):
            for cls in tag.get("class") or []:
                m = _LANG_CLASS.fullmatch(cls)
                if m:
                    return m.group(1).lower()
    return ""


def fenced(code: str, lang: str) -> str:
    """A Markdown code fence around code, longer than any backtick run inside it."""
    code = code.strip("\n")
    runs = re.findall(r"`{3,}", code)
    mark = "`" * max([3] + [len(r) + 1 for r in runs])
    return f"{mark}{lang}\n{code}\n{mark}"


class Walker:
    """HTML elements -> text blocks with heading offsets (also used for EPUB chapters)."""

    def __init__(self) -> None:
        self.out = TextBuilder()
        self.inline: list[str] = []
        self.tables = 0
        self.code_blocks = 0

    def flush(self) -> None:
        text = " ".join("".join(self.inline).split())
        self.inline = []
        if text:
            self.out.add(text)

    def walk(self, node: Tag) -> None:
        for child in node.children:
            if isinstance(child, (Comment, Doctype, ProcessingInstruction)):
                continue
            if isinstance(child, NavigableString):
                self.inline.append(str(child))
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name
            if name in _HEADINGS:
                self.flush()
                self.out.heading(_HEADINGS[name], child.get_text(" "))
            elif name == "table":
                self.flush()
                rows = [[c.get_text(" ") for c in tr.find_all(["th", "td"])] for tr in child.find_all("tr")]
                md = to_markdown(rows)
                if md:
                    self.tables += 1
                    self.out.add(md)
            elif name == "pre":
                self.flush()
                code = child.get_text()
                if code.strip():
                    self.code_blocks += 1
                    self.out.add(fenced(code, code_language(child)))
            elif name in _BLOCKS:
                self.flush()
                if name == "li":
                    self.inline.append("- ")
                self.walk(child)
                self.flush()
            else:
                self.walk(child)


class HtmlParser:
    format = "html"
    extensions = (".html", ".htm", ".xhtml")
    multi = False

    def parse(self, data: bytes, path: str) -> ParsedDoc:
        declared = _CHARSET.search(data[:4096])
        text, encoding = decode_text(data, hint=declared.group(1).decode("ascii") if declared else None)
        soup = BeautifulSoup(text, "lxml")
        page_title = " ".join(soup.title.get_text().split()) if soup.title else ""
        for tag in soup.find_all(_DROP):
            tag.decompose()
        for tag in soup.find_all(_PAGE_CHROME):
            if tag.find_parent(["main", "article"]) is None:
                tag.decompose()
        root = soup.find("main") or soup.find("article") or soup.body or soup
        walker = Walker()
        walker.walk(root)
        walker.flush()
        first_h1 = next((t for lvl, t, _ in walker.out.heads if lvl == 1), "")
        return ParsedDoc(
            title=page_title or first_h1 or PurePosixPath(path).stem,
            text=walker.out.text(),
            sections=walker.out.sections(),
            metadata={"encoding": encoding, "tables": walker.tables, "code_blocks": walker.code_blocks},
        )
