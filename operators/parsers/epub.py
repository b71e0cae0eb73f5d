"""EPUB via ebooklib: the spine's documents in reading order, chapters and their headings as sections.

Each spine document is XHTML, read by the HTML parser's walker into one text,
so tables, lists and `<pre>` code come out as they do for HTML. A chapter
whose XHTML has no heading of its own takes its table-of-contents title as a
level-1 heading. Files that are not a readable EPUB are `corrupt`; files whose
content is encrypted (DRM: META-INF/encryption.xml beyond font obfuscation,
or Adobe's rights.xml) are `encrypted`, since their text cannot be read.
"""
from __future__ import annotations

import io
import warnings
import zipfile
from pathlib import PurePosixPath
from typing import Any
from xml.etree import ElementTree

from bs4 import BeautifulSoup

from infuse.operators.common.base import OperatorError
from infuse.operators.parsers.document import ParsedDoc
from infuse.operators.parsers.html import Walker

# encryption methods that only obfuscate embedded fonts: the text is readable
_FONT_OBFUSCATION = ("http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC")
_ENC = "{http://www.w3.org/2001/04/xmlenc#}"


def drm_reason(zf: zipfile.ZipFile) -> str | None:
    """Why the book's text is unreadable without a key, or None."""
    names = set(zf.namelist())
    if "META-INF/rights.xml" in names:
        return "DRM-protected EPUB (META-INF/rights.xml: Adobe ADEPT)"
    if "META-INF/encryption.xml" not in names:
        return None
    try:
        root = ElementTree.fromstring(zf.read("META-INF/encryption.xml"))
    except ElementTree.ParseError:
        return "DRM-protected EPUB (META-INF/encryption.xml present and unreadable)"
    encrypted = []
    for data in root.iter(f"{_ENC}EncryptedData"):
        method = data.find(f"{_ENC}EncryptionMethod")
        algorithm = method.get("Algorithm", "") if method is not None else ""
        if algorithm not in _FONT_OBFUSCATION:
            ref = data.find(f"{_ENC}CipherData/{_ENC}CipherReference")
            encrypted.append(ref.get("URI", "?") if ref is not None else "?")
    if encrypted:
        return f"DRM-protected EPUB: {len(encrypted)} encrypted file(s), e.g. {encrypted[0]}"
    return None


def _toc_titles(toc: Any, out: dict[str, str]) -> dict[str, str]:
    """href (without #fragment) -> the first table-of-contents title that points at it."""
    for entry in toc:
        if isinstance(entry, tuple):  # (Section, [children])
            section, children = entry
            href = getattr(section, "href", None)
            if href and getattr(section, "title", None):
                out.setdefault(href.split("#")[0], section.title)
            _toc_titles(children, out)
        elif getattr(entry, "href", None) and getattr(entry, "title", None):
            out.setdefault(entry.href.split("#")[0], entry.title)
    return out


def _read_book(data: bytes) -> Any:
    """The ebooklib book, or OperatorError: corrupt (not a readable EPUB) or encrypted (DRM)."""
    from ebooklib import epub

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            drm = drm_reason(zf)
    except zipfile.BadZipFile as e:
        raise OperatorError("corrupt", f"not a readable EPUB: {e}") from e
    if drm:
        raise OperatorError("encrypted", drm)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return epub.read_epub(io.BytesIO(data), {"ignore_ncx": True})
    except (epub.EpubException, KeyError, zipfile.BadZipFile, ElementTree.ParseError, ValueError) as e:
        raise OperatorError("corrupt", f"not a readable EPUB: {type(e).__name__}: {e}") from e


def _chapter_items(book: Any) -> list[Any]:
    """The spine's XHTML documents in reading order (non-linear items, notes, are read in place too)."""
    from ebooklib import ITEM_DOCUMENT, epub

    items = [book.get_item_with_id(idref) for idref, _linear in book.spine]
    return [item for item in items
            if item is not None and item.get_type() == ITEM_DOCUMENT and not isinstance(item, epub.EpubNav)]


def _walk_chapter(walker: Walker, item: Any, toc_title: str | None) -> bool:
    """Add one chapter's text to the walker; True when it added any. A chapter with no heading of its own
    starts with its table-of-contents title."""
    soup = BeautifulSoup(item.get_content(), "lxml")
    for tag in soup.find_all(("script", "style")):
        tag.decompose()
    body = soup.body or soup
    length_before = walker.out.length
    if toc_title and not body.find(("h1", "h2", "h3", "h4", "h5", "h6")):
        walker.out.heading(1, toc_title)
    walker.walk(body)
    walker.flush()
    return walker.out.length > length_before


def _first_metadata(book: Any, name: str) -> Any:
    values = book.get_metadata("DC", name)
    return values[0][0] if values else None


class EpubParser:
    format = "epub"
    extensions = (".epub",)
    multi = False

    def parse(self, data: bytes, path: str) -> ParsedDoc:
        book = _read_book(data)
        titles = _toc_titles(book.toc, {})
        walker = Walker()
        chapters = [item.get_name() for item in _chapter_items(book)
                    if _walk_chapter(walker, item, titles.get(item.get_name()))]
        title = _first_metadata(book, "title") or next((t for _, t, _ in walker.out.heads), "")
        return ParsedDoc(
            title=" ".join(title.split()) or PurePosixPath(path).stem,
            text=walker.out.text(),
            sections=walker.out.sections(),
            metadata={"chapters": len(chapters), "spine": chapters, "tables": walker.tables,
                      "code_blocks": walker.code_blocks, "language": _first_metadata(book, "language")},
        )
