"""Find the facts a document states, with no LLM: record fields, table rows, sentences that state a value,
and FAQ headings that are already questions.

WHY: a fact is learned when it is trained in several phrasings (Physics of LMs 3.1; Ovadia et al. 2023)
and every fact gets the same share (Mecklenburg et al. 2024). That needs the facts themselves, one by one,
before any question is written. Each `Fact` is one statement in ONE language: a bilingual record gives an
English fact for its English field and a Chinese one for its Chinese field, never one sample with both.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from infuse.operators.common.lang import has_cjk, prose_lang
from infuse.operators.parsers.records import field_text
from infuse.operators.synthesize.spans import find_value

# A value worth asking for: a number (signed, decimal, grouped, with an optional unit), a date, a version,
# or a code (LOTUS_EIO, SKU-4471, wal_sync, lotus_open).
_UNIT = (r"(?:\s?(?:%|KB|MB|GB|TB|KiB|MiB|GiB|ms|s|秒|毫秒|分钟|小时|天|周|个月|年|次|个|条|台|人|元|美元|万|亿|字节|"
         r"bytes?|seconds?|minutes?|hours?|days?|weeks?|months?|years?|nodes?|replicas?|threads?|times|"
         r"requests?|USD|EUR|RMB|°C|km|m|kg|GHz|MHz)(?![A-Za-z]))?")
_DATE = r"\d{4}-\d{1,2}-\d{1,2}|\d{4}年\d{1,2}月\d{1,2}日|\d{4}年\d{1,2}月"
_NUMBER = r"[-+−]?\d[\d,]*(?:\.\d+)*" + _UNIT
_CODE = r"[A-Z][A-Z0-9]*(?:[_-][A-Z0-9]+)+|[a-z][a-z0-9]*(?:_[a-z0-9]+)+"
VALUE = re.compile(rf"(?<![\w.\-])(?:{_DATE}|{_NUMBER}|{_CODE})(?![\w])")
_SENT_END = re.compile(r"(?<=[。！？!?；;])|(?<=\.)\s+(?=[A-Z])|\n+")
_QUESTION = re.compile(r"[?？]\s*$")


@dataclass
class Fact:
    """One statement: `subject`'s `attribute` is `value`, in `lang`; or a sentence that states `value`."""

    kind: str  # field | row | sentence | faq
    lang: str
    subject: str
    attribute: str
    value: str
    statement: str  # the fact as one full sentence (field facts: made from subject, attribute and value)
    span: tuple[int, int]  # where the document states it
    short: str = ""  # the short gold answer ("" when the value is long prose: trained, never asked in eval)
    aliases: list[str] = field(default_factory=list)
    title_attribute: str = ""  # what the subject is (a record's title field: "name", "函数")
    context: str = ""  # the heading or document title the fact sits under


def lang_of(text: str, fallback: str) -> str | None:
    """zh or en for prose; None for a language-neutral value (a number, a code, a name in Latin letters)."""
    if has_cjk(text):
        return "zh"
    words = re.findall(r"[A-Za-z]{2,}", re.sub(VALUE, " ", text))
    if len(words) >= 2 and prose_lang(text, "") == "en":
        return "en"
    return None if len(words) < 2 else fallback


def short_of(value: str, max_chars: int) -> str:
    """The value as a short gold answer when it is short enough to be asked for exactly."""
    v = " ".join(value.split()).strip("。.；;，, ")
    return v if 0 < len(v) <= max_chars else ""


def aliases_of(short: str) -> list[str]:
    """Spellings a correct answer may use: without the space before a unit, without thousands commas."""
    out = []
    for alt in (re.sub(r"(\d)\s+(?=\D)", r"\1", short), short.replace(",", ""), short.replace("−", "-")):
        if alt != short and alt not in out:
            out.append(alt)
    return out


def record_facts(doc: dict[str, Any], fields: dict[str, Any], title: str, title_key: str | None,
                 skip: list[str], max_short: int, doc_lang: str) -> list[Fact]:
    """One fact per field of a record: the field's own text, found in the document for its span."""
    text = doc["text"]
    out = []
    cursor = 0
    for name, raw in fields.items():
        value = field_text(raw).strip()
        if name == title_key or name in skip or not value:
            continue
        found = find_value(text, value, cursor)
        span = found or (0, len(text))
        cursor = found[1] if found else cursor
        lang = lang_of(value, doc_lang)
        short = short_of(value, max_short)
        out.append(Fact("field", lang or "", title, str(name), value, "", span, short, aliases_of(short),
                        title_attribute=str(title_key or "")))
    return out


_ROW = re.compile(r"^\s*\|(.+)\|\s*$")
_RULE = re.compile(r"^\s*\|?\s*:?-{3,}")


def table_facts(doc: dict[str, Any], max_short: int, doc_lang: str) -> list[Fact]:
    """A pipe table (what the parsers write for Markdown, DOCX, HTML and slide tables): each body row is a
    record named by its first cell, one fact per other cell under its header."""
    text = doc["text"]
    lines = text.split("\n")
    offsets, pos = [], 0
    for line in lines:
        offsets.append(pos)
        pos += len(line) + 1
    out: list[Fact] = []
    i = 0
    while i + 2 < len(lines):
        head, rule = _ROW.match(lines[i]), _RULE.match(lines[i + 1])
        if not (head and rule):
            i += 1
            continue
        header = [c.strip() for c in head.group(1).split("|")]
        j = i + 2
        while j < len(lines) and _ROW.match(lines[j]):
            out += _row_facts(header, lines[j], offsets[j], max_short)
            j += 1
        i = j
    return out


def _row_facts(header: list[str], line: str, offset: int, max_short: int) -> list[Fact]:
    """One fact per non-empty cell of a body row (at `offset` in the document), named by its first cell."""
    cells = [c.strip() for c in _ROW.match(line).group(1).split("|")]
    if len(cells) != len(header) or not cells[0]:
        return []
    out = []
    for name, value in zip(header[1:], cells[1:]):
        if not value or not name:
            continue
        start = offset + line.find(value)
        short = short_of(value, max_short)
        out.append(Fact("row", lang_of(value, "") or "", cells[0], name, value, "", (start, start + len(value)),
                        short, aliases_of(short), title_attribute=header[0]))
    return out


def sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentence spans of text[start:end] (CJK and Latin sentence ends, and line breaks)."""
    out, pos = [], start
    for m in _SENT_END.finditer(text, start, end):
        if m.start() > pos:
            out.append((pos, m.start()))
        pos = m.end()
    if pos < end:
        out.append((pos, end))
    return [(s + len(text[s:e]) - len(text[s:e].lstrip()), e - (len(text[s:e]) - len(text[s:e].rstrip())))
            for s, e in out if text[s:e].strip()]


def sentence_facts(doc: dict[str, Any], spans: list[tuple[int, int, str]], max_short: int, min_chars: int,
                   max_chars: int) -> list[Fact]:
    """A prose sentence that states a value (a number, date or code) is a fact about that value.

    Only sentences in one language: a line that holds prose of both ("事务默认使用快照隔离（snapshot
    isolation）" beside an English bullet) is split into sentences first, and a sentence whose prose is
    in both languages is left out. Table rows, code and headings are not sentences.
    """
    text = doc["text"]
    out: list[Fact] = []
    seen: set[str] = set()
    for start, end, context in spans:
        for s, e in sentences(text, start, end):
            sent = text[s:e]
            if not (min_chars <= len(sent) <= max_chars) or sent.lstrip().startswith(("|", "#", "```", "-", "*")):
                continue
            if _QUESTION.search(sent) or sent in seen:
                continue
            lang = lang_of(sent, "")
            if not lang or _bilingual(sent):
                continue
            values = [m for m in VALUE.finditer(sent) if _worth(m.group(0))]
            if not values:
                continue
            seen.add(sent)
            m = values[0]
            short = short_of(m.group(0), max_short)
            out.append(Fact("sentence", lang, context, "", m.group(0), sent, (s, e), short, aliases_of(short),
                            context=context))
    return out


def _worth(value: str) -> bool:
    """A value a question can ask for: not a lone digit (a list number, "step 2")."""
    return not re.fullmatch(r"[0-9]", value.strip())


def _bilingual(sent: str) -> bool:
    """Prose of both languages in one sentence (Latin words beside CJK, not just identifiers or codes)."""
    if not has_cjk(sent):
        return False
    latin = re.findall(r"\b[a-z]{3,}\b", re.sub(VALUE, " ", re.sub(r"`[^`]*`", " ", sent)))
    return len(latin) >= 2


def faq_facts(doc: dict[str, Any], bodies: list[tuple[dict[str, Any], int, int]]) -> list[Fact]:
    """A section whose heading is a question ("LotusDB 支持哪些操作系统？"): the heading asks, the body answers."""
    out = []
    text = doc["text"]
    for sec, start, end in bodies:
        heading = (sec.get("heading_path") or [""])[-1].strip()
        if not _QUESTION.search(heading):
            continue
        body = text[start:end]
        lang = lang_of(heading, "") or lang_of(body, "") or ""
        if not lang or _bilingual(body):
            continue
        out.append(Fact("faq", lang, heading, "", body, body, (start, end), context=heading))
    return out
