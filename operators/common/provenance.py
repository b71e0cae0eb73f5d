"""Provenance after clean: map offsets in a chunk's cleaned text back to its document's text.

A chunk is born as `document.text[start:end]`; clean may then drop an email,
straighten a quote or collapse spaces, and from there an offset into the
chunk's text no longer points at the document. Clean therefore stores, for
each chunk it changed, `offset_map`: the blocks both texts share, as flat
int triples (cleaned offset, original offset, length), relative to the chunk.
Unchanged chunks have none. `to_original(chunk, a, b)` maps a span of the
cleaned text to document offsets; text clean replaced or removed inside or at
the edge of the span is included, so `document.text[start:end]` always covers
what the cleaned span says.
"""
from __future__ import annotations

from bisect import bisect_right
from typing import Any

ANCHOR = 8  # characters that must agree to resynchronise after a difference
WINDOW = 512  # how far ahead a resynchronisation is looked for (a removed URL or email fits)


def _common(a: str, i: int, b: str, j: int) -> int:
    """Length of the common prefix of a[i:] and b[j:]."""
    k = 0
    step = 64
    while step:
        while a[i + k : i + k + step] == b[j + k : j + k + step] and i + k + step <= len(a) and j + k + step <= len(b):
            k += step
        step //= 4
    return k


def _resync(a: str, i: int, b: str, j: int) -> tuple[int, int] | None:
    """The nearest (i', j') past a difference where ANCHOR characters agree again (fewest skipped chars)."""
    best: tuple[int, int, int] | None = None
    for dj in range(0, min(WINDOW, len(b) - j)):
        if best is not None and dj >= best[0]:
            break
        anchor = b[j + dj : j + dj + ANCHOR]
        if len(anchor) < ANCHOR and j + dj + len(anchor) < len(b):
            break
        pos = a.find(anchor, i, i + WINDOW + len(anchor)) if anchor else -1
        if pos >= 0 and (pos > i or dj > 0):
            cost = (pos - i) + dj
            if best is None or cost < best[0]:
                best = (cost, pos, j + dj)
    return (best[1], best[2]) if best else None


def align(original: str, cleaned: str) -> list[int]:
    """Shared blocks of two texts as flat triples (cleaned offset, original offset, length), in order.

    Greedy and linear-ish: follow the common text, and at a difference jump to
    the nearest point where both agree again. Cleaning makes local edits, for
    which this finds the same blocks a full diff would, at a fraction of the cost.
    """
    out: list[int] = []
    i = j = 0
    while i < len(original) and j < len(cleaned):
        k = _common(original, i, cleaned, j)
        if k:
            out += [j, i, k]
            i, j = i + k, j + k
            continue
        nxt = _resync(original, i, cleaned, j)
        if nxt is None:
            break
        i, j = nxt
    return out


def offset_map(original: str, cleaned: str) -> list[int] | None:
    """None when clean left the text as it was, else align(original, cleaned)."""
    return None if original == cleaned else align(original, cleaned)


def to_original(chunk: dict[str, Any], start: int, end: int) -> tuple[int, int]:
    """Document offsets [s, e) covering the span [start, end) of the chunk's (cleaned) text."""
    base = int(chunk["start"])
    flat = chunk.get("offset_map")
    if flat is None:  # not changed by clean: offsets carry over as they are
        return base + start, base + end
    original_len = int(chunk["end"]) - base
    blocks = [(int(flat[k]), int(flat[k + 1]), int(flat[k + 2])) for k in range(0, len(flat), 3)]
    starts = [b for b, _, _ in blocks]
    return base + _map(blocks, starts, start, True, original_len), base + _map(blocks, starts, end, False, original_len)


def _map(blocks: list[tuple[int, int, int]], starts: list[int], x: int, is_start: bool, original_len: int) -> int:
    """A cleaned offset in original coordinates; between blocks, the edge that takes in the changed text."""
    if is_start:
        k = bisect_right(starts, x) - 1  # the block starting at or before x
        if k >= 0:
            b, a, n = blocks[k]
            return a + (x - b) if x < b + n else a + n  # in the block, or in the changed text after it
        return 0
    k = bisect_right(starts, x - 1) - 1 if x > 0 else -1  # the block holding character x - 1
    if k >= 0:
        b, a, n = blocks[k]
        if x <= b + n:
            return a + (x - b)
    # character x - 1 is changed text: reach to where the next shared block starts in the original
    return blocks[k + 1][1] if k + 1 < len(blocks) else original_len
