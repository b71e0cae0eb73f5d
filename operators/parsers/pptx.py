"""PPTX via python-pptx: each slide is a page; its title is a heading; notes are kept, marked."""
from __future__ import annotations

import io
import zipfile
from pathlib import PurePosixPath
from typing import Any

from pptx import Presentation
from pptx.enum.shapes import MSO_SHAPE_TYPE
from pptx.exc import PackageNotFoundError

from infuse.operators.common.base import OperatorError
from infuse.operators.parsers.blocks import join_pages
from infuse.operators.parsers.document import ParsedDoc
from infuse.operators.parsers.sections import build_sections
from infuse.operators.parsers.tables import to_markdown

NOTES_PREFIX = "Notes: "


def _shape_blocks(shape: Any, skip: int | None) -> list[str]:
    """Text blocks of one shape, groups recursively, in the slide's shape order (skip: the title's shape id)."""
    if shape.shape_id == skip:
        return []
    if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
        return [b for child in shape.shapes for b in _shape_blocks(child, skip)]
    if getattr(shape, "has_table", False) and shape.has_table:
        rows = [[cell.text for cell in row.cells] for row in shape.table.rows]
        md = to_markdown(rows)
        return [md] if md else []
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        lines = []
        for para in shape.text_frame.paragraphs:
            line = para.text.replace("\v", "\n").strip()
            if line:
                lines.append("  " * para.level + line)
        return ["\n".join(lines)] if lines else []
    return []


def _notes(slide: Any) -> str:
    """The slide's speaker notes, stripped ("" when it has none)."""
    if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
        return slide.notes_slide.notes_text_frame.text.strip()
    return ""


def _slide(slide: Any) -> tuple[str, str, bool]:
    """(title, text, whether it has notes) of one slide: its title, each shape's blocks, then its notes."""
    title_shape = slide.shapes.title
    title = " ".join((title_shape.text_frame.text if title_shape is not None else "").split())
    skip = title_shape.shape_id if title_shape is not None else None
    blocks = [title] if title else []
    for shape in slide.shapes:
        blocks += _shape_blocks(shape, skip)
    notes = _notes(slide)
    if notes:
        blocks.append(NOTES_PREFIX + notes)
    return title, "\n\n".join(b for b in blocks if b.strip()), bool(notes)


class PptxParser:
    format = "pptx"
    extensions = (".pptx",)
    multi = False

    def parse(self, data: bytes, path: str) -> ParsedDoc:
        try:
            prs = Presentation(io.BytesIO(data))
        except (zipfile.BadZipFile, PackageNotFoundError, KeyError) as e:
            raise OperatorError("corrupt", f"not a readable PPTX: {e}") from e
        slides = [_slide(slide) for slide in prs.slides]
        text, pages = join_pages([slide_text for _, slide_text, _ in slides])
        heads = [(1, title or f"Slide {page.page}", page.start) for (title, _, _), page in zip(slides, pages)]
        core_title = (prs.core_properties.title or "").strip()
        first = next((h[1] for h in heads if not h[1].startswith("Slide ")), "")
        return ParsedDoc(
            title=core_title or first or PurePosixPath(path).stem,
            text=text,
            sections=build_sections(heads, len(text)),
            pages=pages,
            metadata={"slide_count": len(pages), "slides_with_notes": sum(notes for _, _, notes in slides)},
        )
