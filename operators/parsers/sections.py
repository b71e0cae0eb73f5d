"""Turn a flat list of headings into nested Sections with [start, end) spans."""
from __future__ import annotations

from infuse.operators.parsers.document import Section


def build_sections(heads: list[tuple[int, str, int]], text_len: int) -> list[Section]:
    """heads: (level, heading text, start offset) in document order.

    A section ends where the next heading of the same or a higher level (a
    smaller or equal number) starts, so it spans its subsections too.
    """
    out: list[Section] = []
    stack: list[tuple[int, str]] = []
    for i, (level, title, start) in enumerate(heads):
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        end = text_len
        for later_level, _, later_start in heads[i + 1 :]:
            if later_level <= level:
                end = later_start
                break
        out.append(Section([t for _, t in stack], level, start, max(start, end)))
    return out
