"""Where a chunk may end: sentence, paragraph and line boundaries for prose and code.

A boundary is an offset into the document text plus a level; the chunk packer
prefers higher levels. Offsets are absolute so chunks stay exact slices.
Levels: 3 = paragraph break / top-level definition, 2 = sentence end / blank
line in code, 1 = any line end (code, tables, records).
"""
from __future__ import annotations

import re

PARAGRAPH = 3
SENTENCE = 2
LINE = 1

# Chinese terminators, then any closing quotes/brackets that belong to the sentence.
_CLOSERS = "」』”’）)】》〉\"'\\]"
_CJK_END = re.compile(f"[。！？；]+[{_CLOSERS}]*|[!?]+(?=[\u3400-\u9fff])")  # "好吗?是的" too
# English terminators followed by whitespace or the end; '.' is checked for abbreviations.
_EN_END = re.compile(r"[.!?]+[”’\"')\]]*(?=\s|$)")
# Glued sentences as in scraped text ("socialism.Humans", "in 1830.Accreditation", "(SACS).The"):
# a lowercase letter, digit or closer, a stop, then a capitalised word (not "U.S.Army", "v1.2").
_EN_GLUED = re.compile(r"(?<=[a-z0-9)\]\"'”’])[.!?](?=[A-Z][a-z]{2})")
_PARA = re.compile(r"\n[ \t]*\n")
# A newline that starts a heading, list item or quote also ends the line before it.
_BLOCK_LINE = re.compile(r"\n(?=[ \t]*(?:[-*+>]|#{1,6}|\d{1,3}[.)])[ \t])")
_WORD_BEFORE = re.compile(r"[A-Za-z0-9.]+$")
_DOTTED = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]")

ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs e.g i.e cf fig figs eq no nos vol pp approx al inc ltd co corp dept est"
    " jan feb mar apr jun jul aug sep sept oct nov dec".split()
)


def _is_english_stop(text: str, start: int, end: int) -> bool:
    """Whether the '.'/'!'/'?' run at text[start:end] really ends a sentence."""
    nxt = end
    n = len(text)
    while nxt < n and text[nxt].isspace():
        nxt += 1
    if nxt < n and text[nxt].islower():
        return False  # "e.g. this", "approx. three", "... and"
    if "." not in text[start:end] or "!" in text[start:end] or "?" in text[start:end]:
        return True
    m = _WORD_BEFORE.search(text, max(0, start - 40), start)
    if not m:
        return True
    word = m.group(0)
    if word.lower().strip(".") in ABBREVIATIONS:
        return False
    if len(word) == 1 and word.isupper():
        return False  # an initial: "J. Smith"
    if _DOTTED.fullmatch(word):
        return False  # "U.S.", "e.g."
    if word.isdigit():
        line_start = text.rfind("\n", 0, m.start()) + 1
        if not text[line_start : m.start()].strip():
            return False  # a numbered list item "1. Intro"
    return True


def text_boundaries(text: str, start: int, end: int) -> dict[int, int]:
    """Sentence and paragraph ends in text[start:end] as {offset: level}."""
    cuts: dict[int, int] = {}

    def add(pos: int, level: int) -> None:
        if start < pos < end and cuts.get(pos, 0) < level:
            cuts[pos] = level

    for m in _PARA.finditer(text, start, end):
        add(m.start(), PARAGRAPH)
    for m in _BLOCK_LINE.finditer(text, start, end):
        add(m.start(), SENTENCE)
    for m in _CJK_END.finditer(text, start, end):
        add(m.end(), SENTENCE)
    for m in _EN_END.finditer(text, start, end):
        if _is_english_stop(text, m.start(), m.end()):
            add(m.end(), SENTENCE)
    for m in _EN_GLUED.finditer(text, start, end):
        add(m.end(), SENTENCE)
    return cuts


_DEF = re.compile(
    r"(?:@\w|(?:async\s+def|def|class|function|func|fn|pub|public|private|protected|static|export|interface"
    r"|struct|enum|impl|trait|type|module|package|template|CREATE|create)\b)"
)
_ATTACHED = ("#", "//", "/*", "*", "--", "@", '"""', "'''", ";")
_CLOSING = {"end", "fi", "done", "esac"}


def code_boundaries(text: str, start: int, end: int) -> dict[int, int]:
    """Line starts in code as {offset: level}: 3 before a top-level definition, 2 after a blank line, 1 otherwise.

    Comments and decorators directly above a definition stay with it.
    """
    cuts: dict[int, int] = {}
    prev_blank = False
    prev_text = ""
    pos = start
    first = True
    while pos < end:
        nl = text.find("\n", pos, end)
        line_end = end if nl < 0 else nl
        line = text[pos:line_end]
        stripped = line.strip()
        if not first:
            level = LINE
            if stripped:
                top = not line[0].isspace() and stripped[0] not in "})]" and stripped not in _CLOSING
                if top and prev_blank:
                    level = PARAGRAPH
                elif top and _DEF.match(stripped) and not prev_text.startswith(_ATTACHED):
                    level = PARAGRAPH
                elif prev_blank:
                    level = SENTENCE
            cuts[pos] = level
        first = False
        prev_blank = not stripped
        if stripped:
            prev_text = stripped
        pos = line_end + 1
    return cuts


def line_boundaries(text: str, start: int, end: int) -> dict[int, int]:
    """Line starts (tables, records, logs) as {offset: level}: 2 after a blank line, 1 otherwise."""
    cuts: dict[int, int] = {}
    prev_blank = False
    pos = text.find("\n", start, end)
    while pos >= 0:
        nxt = pos + 1
        if nxt >= end:
            break
        line_end = text.find("\n", nxt, end)
        blank = not text[nxt : end if line_end < 0 else line_end].strip()
        cuts[nxt] = SENTENCE if prev_blank and not blank else LINE
        prev_blank = blank
        pos = line_end
    return cuts
