"""Split one document row into chunk rows that later steps turn into questions.

Chunks never span two sections, end on paragraph/sentence (or code definition)
boundaries, and are exact slices of the document text so every generated item
can cite where it came from.
"""
from __future__ import annotations

import hashlib
import json
import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Any

from pydantic import Field, StrictInt, model_validator

from infuse.operators.common.base import OperatorError, Strict
from infuse.operators.common.formats import family
from infuse.operators.chunk.sentences import (
    LINE,
    PARAGRAPH,
    SENTENCE,
    code_boundaries,
    line_boundaries,
    text_boundaries,
)


_NONWS = re.compile(r"\S")
_FENCE = re.compile(r"[ \t]{0,3}(`{3,}|~{3,})")
_ATX_LINE = re.compile(r"#{1,6}(?:\s.*)?")
_SETEXT_LINE = re.compile(r"(?:=+|-+)")


def headings_only(text: str, heading_path: list[str]) -> bool:
    """True for a piece that is nothing but heading lines (`# Title`, a setext underline, or a line that is
    one of its section's headings, as docx and html write them): no chunk should be only that."""
    titles = {" ".join(h.split()) for h in heading_path}
    for line in text.split("\n"):
        line = line.strip()
        if line and not (_ATX_LINE.fullmatch(line) or _SETEXT_LINE.fullmatch(line)
                         or " ".join(line.lstrip("#").split()) in titles):
            return False
    return True


class ChunkConfig(Strict):
    """Sizes in characters (not tokens): the same recipe then behaves alike for Chinese and English.

    Validated when built, so `infuse validate` rejects what the chunk step would.
    """

    target_chars: StrictInt = Field(500, gt=0, description="aim for chunks of about this many characters")
    max_chars: StrictInt = Field(1000, gt=0, description="hard ceiling of a chunk, except one sentence longer than it")
    min_chars: StrictInt = Field(50, gt=0, description="smaller trailing pieces merge into their neighbour")
    overlap_chars: StrictInt = Field(50, ge=0, description="overlap between consecutive chunks of a section")

    @model_validator(mode="after")
    def _consistent(self) -> "ChunkConfig":
        if self.max_chars < self.target_chars:
            raise ValueError(f"max_chars ({self.max_chars}) must be >= target_chars ({self.target_chars})")
        if self.min_chars >= self.target_chars:
            raise ValueError(f"min_chars ({self.min_chars}) must be < target_chars ({self.target_chars})")
        if self.overlap_chars >= self.target_chars:
            raise ValueError(f"overlap_chars ({self.overlap_chars}) must be < target_chars ({self.target_chars})")
        return self


@dataclass
class _Piece:
    """A stretch [start, end) of the document text: text, table, code, record or lines (a log's)."""

    start: int
    end: int
    kind: str
    lang: str | None = None  # code: the fence's language (```python) or the code file's


class _Packer:
    """Greedy packing of one block [start, end) into spans near a goal size, cutting at the best boundary."""

    def __init__(
        self,
        text: str,
        start: int,
        end: int,
        cuts: dict[int, int],
        *,
        goal: int,
        max_chars: int,
        min_chars: int,
        window: tuple[int, int],
        min_level: int,
        overlap_chars: int = 0,
    ) -> None:
        self.text = text
        self.start = start
        self.end = end
        self.pos = sorted(cuts)
        self.lev = [cuts[p] for p in self.pos]
        self.goal = goal
        self.max_chars = max_chars
        self.min_chars = min_chars
        self.window = window
        self.min_level = min_level
        self.overlap_chars = overlap_chars
        self.starts = self._sentence_starts() if overlap_chars else []

    def _sentence_starts(self) -> list[int]:
        """Where an overlap may begin: the first non-blank character after each sentence or paragraph end."""
        found = {self._skip_ws(p) for p, lv in zip(self.pos, self.lev) if lv >= SENTENCE}
        return sorted(s for s in found if s < self.end)

    def _skip_ws(self, pos: int) -> int:
        m = _NONWS.search(self.text, pos, self.end)
        return m.start() if m else self.end

    def _strip_end(self, s: int, e: int) -> int:
        while e > s and self.text[e - 1].isspace():
            e -= 1
        return e

    def _choose_end(self, s: int, after: int) -> int | None:
        """Best boundary in (after, s + max_chars]; None when there is none (a too-long sentence)."""
        be = self.end
        if be - s <= self.goal:
            return be
        chosen = self._best_cut(s, after)
        if chosen is None:
            return None
        # Do not leave a crumb behind when the rest still fits.
        if chosen < be and be - self._skip_ws(chosen) < self.min_chars and be - s <= self.max_chars:
            return be
        return chosen

    def _candidates(self, after: int, limit: int) -> list[tuple[int, int]]:
        """(offset, level) of the cuts in (after, limit] at min_level or above; the block end counts as a
        paragraph break (always a clean cut) when it is within the limit."""
        i = bisect_right(self.pos, after)
        j = bisect_right(self.pos, limit)
        found = [(self.pos[k], self.lev[k]) for k in range(i, j)]
        if self.end <= limit:
            found.append((self.end, PARAGRAPH))
        return [(p, lv) for p, lv in found if lv >= self.min_level and p > after]

    def _best_cut(self, s: int, after: int) -> int | None:
        """Inside the window the highest level wins (paragraph over sentence), nearest the goal among equals;
        with none in the window, the cut nearest the goal."""
        limit = min(s + self.max_chars, self.end)
        found = self._candidates(after, limit)
        if not found:
            return None
        goal = s + self.goal
        lo, hi = s + self.window[0], min(s + self.window[1], limit)

        def nearest(cuts: list[tuple[int, int]]) -> int:
            return min(cuts, key=lambda c: (abs(c[0] - goal), -c[0]))[0]  # a tie goes to the later cut

        inside = [c for c in found if lo <= c[0] <= hi]
        for level in (PARAGRAPH, SENTENCE, LINE):
            at_level = [c for c in inside if c[1] == level]
            if at_level:
                return nearest(at_level)
        return nearest(found)

    def _hard_cut(self, s: int) -> int:
        """Cut a sentence longer than max_chars, preferring a newline, then a comma, then a space."""
        limit = min(s + self.max_chars, self.end)
        lo = s + (limit - s) // 2
        seg = self.text[lo:limit]
        for group in ("\n", "，,、；;：:", " \t\u3000"):
            k = max(seg.rfind(c) for c in group)
            if k >= 0 and lo + k + 1 > s:
                return lo + k + 1
        return limit

    def _overlap_start(self, s: int, e: int) -> int | None:
        """The sentence start nearest to e - overlap_chars inside (s, e), overlapping at most half the goal."""
        cap = self.goal // 2
        i = bisect_left(self.starts, max(s + 1, e - cap))
        j = bisect_left(self.starts, e)
        if i >= j:
            return None
        want = e - self.overlap_chars
        k = bisect_left(self.starts, want, i, j)
        options = [self.starts[x] for x in (k - 1, k) if i <= x < j]
        return min(options, key=lambda c: (abs(c - want), c))

    def spans(self) -> list[tuple[int, int]]:
        """The block's spans in order, each without its surrounding whitespace; with overlap_chars, a span may
        start back at a sentence start inside the span before it."""
        out: list[tuple[int, int]] = []
        s = self._skip_ws(self.start)
        after = s
        while s < self.end:
            e = self._choose_end(s, after)
            if e is None:
                e = self._hard_cut(s)
            stripped = self._strip_end(s, e)
            if stripped > s:
                out.append((s, stripped))
            nxt = self._skip_ws(e)
            if nxt >= self.end:
                break
            s, after = nxt, nxt
            if self.overlap_chars and out and out[-1][1] == stripped:
                c = self._overlap_start(out[-1][0], stripped)
                if c is not None and self._choose_end(c, stripped) is not None:
                    s, after = c, stripped
        return out


def _as_list(value: Any) -> list[Any]:
    """None -> []; also accepts numpy arrays, which pandas gives for list columns (their truth value raises)."""
    return [] if value is None else list(value)


def _clean_sections(n: int, sections: list[dict[str, Any]]) -> list[tuple[int, int, int, list[str]]]:
    """(start, end, level, heading_path) of each section, clamped to [0, n), empty ones left out, by start."""
    clean = []
    for sec in sections:
        a = max(0, min(n, int(sec.get("start") or 0)))
        b = max(0, min(n, int(sec.get("end") or 0)))
        if a < b:
            clean.append((a, b, int(sec.get("level") or 0), [str(h) for h in _as_list(sec.get("heading_path"))]))
    return sorted(clean, key=lambda c: c[0])


def _regions(n: int, sections: list[dict[str, Any]]) -> list[tuple[int, int, list[str]]]:
    """Cut [0, n) at every section start and end; each region takes the deepest section containing it."""
    clean = _clean_sections(n, sections)
    points = sorted({0, n, *(c[0] for c in clean), *(c[1] for c in clean)})
    regions = []
    active: list[tuple[int, int, int, list[str]]] = []
    k = 0
    for a, b in zip(points, points[1:]):
        while k < len(clean) and clean[k][0] <= a:
            active.append(clean[k])
            k += 1
        active = [c for c in active if c[1] > a]  # short: nesting depth, not the section count
        best = max(active, key=lambda c: (c[2], c[0]), default=None)
        regions.append((a, b, best[3] if best else []))
    return regions


# Families chunked as one block of their own kind: records whole, code by definitions, logs by whole lines.
_WHOLE_BLOCK = {"record": "record", "code": "code", "log": "lines"}


def _blocks(text: str, start: int, end: int, fmt: str, code_lang: str | None = None) -> list[_Piece]:
    """Split a region into text, table (pipe lines) and code (fenced) blocks."""
    kind = _WHOLE_BLOCK.get(family(fmt))
    if kind is not None:
        return [_Piece(start, end, kind, code_lang if kind == "code" else None)]
    region = text[start:end]
    if "|" not in region and "```" not in region and "~~~" not in region:
        return [_Piece(start, end, "text")]
    return _BlockSplitter(text, start, end).split()


def _line_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """(start, end) of each line in text[start:end], without its newline."""
    lines = []
    pos = start
    while pos < end:
        nl = text.find("\n", pos, end)
        line_end = end if nl < 0 else nl
        lines.append((pos, line_end))
        pos = line_end + 1
    return lines


def _closes_fence(line: str, mark: str) -> bool:
    """Whether a stripped line closes a fence opened with `mark`: as many of its character or more, and nothing else."""
    return line.startswith(mark[0] * len(mark)) and not line.strip(mark[0])


class _BlockSplitter:
    """Fenced code blocks and pipe tables of a region, found line by line; what lies between them is text."""

    def __init__(self, text: str, start: int, end: int) -> None:
        self.text = text
        self.end = end
        self.lines = _line_spans(text, start, end)
        self.blocks: list[_Piece] = []
        self.text_from = start

    def split(self) -> list[_Piece]:
        i = 0
        while i < len(self.lines):
            after = self._fence(i)
            if after is None:
                after = self._table(i)
            i = i + 1 if after is None else after
        if self.text_from < self.end:
            self.blocks.append(_Piece(self.text_from, self.end, "text"))
        return self.blocks

    def _line(self, k: int) -> str:
        a, b = self.lines[k]
        return self.text[a:b]

    def _emit(self, kind: str, a: int, b: int, lang: str | None = None) -> None:
        """The block [a, b), after the text since the last block."""
        if a > self.text_from:
            self.blocks.append(_Piece(self.text_from, a, "text"))
        self.blocks.append(_Piece(a, b, kind, lang))
        self.text_from = b

    def _fence(self, i: int) -> int | None:
        """A fenced code block opening at line i, to its closing fence (or the region's end): the line after it."""
        line = self._line(i)
        fence = _FENCE.match(line)
        if not fence:
            return None
        mark = fence.group(1)
        j = i + 1
        while j < len(self.lines) and not _closes_fence(self._line(j).strip(), mark):
            j += 1
        last = min(j, len(self.lines) - 1)
        info = line[fence.end():].strip().split()
        self._emit("code", self.lines[i][0], self.lines[last][1], info[0].strip("{}.").lower() if info else None)
        return last + 1

    def _table(self, i: int) -> int | None:
        """A table of two or more pipe lines starting at line i: the line after it."""
        if not self._line(i).lstrip().startswith("|"):
            return None
        j = i
        while j + 1 < len(self.lines) and self._line(j + 1).lstrip().startswith("|"):
            j += 1
        if j == i:
            return None
        self._emit("table", self.lines[i][0], self.lines[j][1])
        return j + 1


def _pack_block(text: str, block: _Piece, cfg: ChunkConfig) -> list[_Piece]:
    """A block cut into pieces at the boundaries of its kind, each kind with its own goal size and window."""
    a, b, kind = block.start, block.end, block.kind
    common = dict(max_chars=cfg.max_chars, min_chars=cfg.min_chars)
    if kind == "text":
        packer = _Packer(
            text, a, b, text_boundaries(text, a, b), goal=cfg.target_chars,
            window=(cfg.target_chars // 2, cfg.target_chars + cfg.target_chars // 4),
            min_level=SENTENCE, overlap_chars=cfg.overlap_chars, **common,
        )
    elif kind == "code":
        packer = _Packer(
            text, a, b, code_boundaries(text, a, b), goal=cfg.target_chars,
            window=(cfg.min_chars, cfg.max_chars), min_level=LINE, **common,
        )
    elif kind == "table":
        # Tables stay whole when they fit; otherwise as many rows as fit per piece.
        packer = _Packer(
            text, a, b, line_boundaries(text, a, b), goal=cfg.max_chars,
            window=(cfg.max_chars // 2, cfg.max_chars), min_level=LINE, **common,
        )
    else:  # record / lines
        goal = cfg.max_chars if kind == "record" else cfg.target_chars
        packer = _Packer(
            text, a, b, line_boundaries(text, a, b), goal=goal,
            window=(cfg.target_chars // 2, cfg.max_chars), min_level=LINE, **common,
        )
        kind = "record" if kind == "record" else "text"
    return [_Piece(s, e, kind, block.lang) for s, e in packer.spans()]


def _mergeable(a: _Piece, b: _Piece) -> bool:
    """Code merges only with code of the same language: a fenced block stays a code chunk of its own."""
    return ("code" not in (a.kind, b.kind)) or (a.kind == b.kind and a.lang == b.lang)


def _fold(first: _Piece, second: _Piece, small: _Piece) -> _Piece:
    """Two neighbouring pieces as one, one of them the small piece being folded: the kind and language are the
    larger one's, the neighbour's on a tie."""
    other = second if small is first else first
    big = other if other.end - other.start >= small.end - small.start else small
    return _Piece(first.start, max(first.end, second.end), big.kind, big.lang)


def _merge_small(pieces: list[_Piece], cfg: ChunkConfig) -> list[_Piece]:
    """Fold pieces under min_chars into a neighbour of the same section, if the result stays within max_chars."""
    i = 0
    while i < len(pieces) and len(pieces) > 1:
        p = pieces[i]
        if p.end - p.start >= cfg.min_chars:
            i += 1
        elif i > 0 and p.end - pieces[i - 1].start <= cfg.max_chars and _mergeable(pieces[i - 1], p):
            pieces[i - 1 : i + 1] = [_fold(pieces[i - 1], p, p)]
            i -= 1
        elif i + 1 < len(pieces) and pieces[i + 1].end - p.start <= cfg.max_chars and _mergeable(p, pieces[i + 1]):
            pieces[i : i + 2] = [_fold(p, pieces[i + 1], p)]
        else:
            i += 1
    return pieces


class _Source:
    """The document a chunk row comes from: its text, the fields every row repeats, and its pages."""

    def __init__(self, doc: dict[str, Any]) -> None:
        text = doc.get("text")
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise OperatorError("bad_document", "document text is not a string", type=type(text).__name__)
        self.doc = doc
        self.text = text
        self.doc_id = str(doc.get("doc_id") or "")
        self.pages = sorted(
            (int(p.get("start") or 0), int(p.get("end") or 0), int(p["page"]))
            for p in _as_list(doc.get("pages"))
            if p.get("page") is not None
        )
        self.page_starts = [p[0] for p in self.pages]

    def page_at(self, pos: int) -> int | None:
        """The page holding offset pos (the first page for an offset before it); None without pages."""
        if not self.pages:
            return None
        k = bisect_right(self.page_starts, pos) - 1
        return self.pages[max(k, 0)][2]

    def row(self, p: _Piece, heading_path: list[str], index: int, prev_end: int) -> dict[str, Any]:
        """The CHUNK_SCHEMA row of piece p, the index-th chunk; prev_end is where the chunk before it ends."""
        return {
            "chunk_id": hashlib.sha256(f"{self.doc_id}:{p.start}:{p.end}".encode()).hexdigest()[:32],
            "doc_id": self.doc_id,
            "path": self.doc.get("path"),
            "format": self.doc.get("format"),
            "chunk_index": index,
            "text": self.text[p.start : p.end],
            "heading_path": list(heading_path),
            # the page where the chunk's own text starts: an overlap reaching back over
            # a page break must not label the chunk with the previous page
            "page": self.page_at(_own_start(self.text, p.start, p.end, prev_end)),
            "start": p.start,
            "end": p.end,
            "kind": p.kind,
            "code_lang": (p.lang or None) if p.kind == "code" else None,
        }


def _region_pieces(text: str, a: int, b: int, fmt: str, file_lang: str | None, cfg: ChunkConfig) -> list[_Piece]:
    """The pieces of one region [a, b): its blocks packed, small pieces merged into a neighbour."""
    pieces: list[_Piece] = []
    for block in _blocks(text, a, b, fmt, file_lang):
        pieces.extend(_pack_block(text, block, cfg))
    return _merge_small(pieces, cfg)


def chunk_document(doc: dict[str, Any], cfg: ChunkConfig) -> list[dict[str, Any]]:
    """One DOCUMENT_SCHEMA row in, its CHUNK_SCHEMA rows out (text == doc text[start:end])."""
    src = _Source(doc)
    text = src.text
    fmt = str(doc.get("format") or "").lower()
    file_lang = _code_file_language(doc) if family(fmt) == "code" else None
    rows: list[dict[str, Any]] = []
    for a, b, heading_path in _regions(len(text), _as_list(doc.get("sections"))):
        for p in _region_pieces(text, a, b, fmt, file_lang, cfg):
            if p.end <= p.start or headings_only(text[p.start : p.end], heading_path):
                continue  # blank, or only headings (they live on in the heading_path of the chunks below)
            rows.append(src.row(p, heading_path, len(rows), rows[-1]["end"] if rows else 0))
    return rows


def _code_file_language(doc: dict[str, Any]) -> str | None:
    """A code file's language, as its parser recorded it (metadata["language"])."""
    try:
        lang = json.loads(doc.get("metadata") or "{}").get("language")
    except (TypeError, ValueError, AttributeError):
        return None
    return lang if isinstance(lang, str) and lang != "unknown" else None


def _own_start(text: str, start: int, end: int, prev_end: int) -> int:
    """The first non-blank character of a chunk after its overlap with the previous chunk."""
    own = max(start, min(prev_end, end - 1))
    while own < end - 1 and text[own].isspace():
        own += 1
    return own
