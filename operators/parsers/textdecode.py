"""Bytes -> str for every text-like format (md, html, txt, code, log, json, csv).

Order matters because several encodings accept the same bytes: a BOM first,
then a UTF-16 guess from where the NUL bytes sit, then valid UTF-8 (a GBK text
is almost never valid UTF-8), then an optional declared charset, then
charset-normalizer (which weighs language coherence, so short GBK Chinese stays
GBK rather than Big5 or a Latin code page), then GB18030/Big5 as a last try.
Every candidate must decode strictly and look like clean text. Bytes that
decode strictly as UTF-8 or as their BOM says are text even when they hold
U+FFFD: a scraped corpus carries replacement characters from its own past,
and they are content (ingest counts them in the document's metadata). Only a
guessed encoding that yields U+FFFD is taken for a misreading.

Multi-record files (JSONL, CSV) use `decode_records`: UTF-8 with a few bad
records keeps those records' bad bytes as surrogate escapes, so the parser
rejects those records alone (`has_bad_bytes`) and keeps the rest.
"""
from __future__ import annotations

import codecs
import re

from charset_normalizer import from_bytes

from infuse.operators.common.base import OperatorError

_ALLOWED_CONTROLS = {"\t", "\n", "\r", "\f", "\v", "\x1b"}
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_FALLBACKS = ("gb18030", "big5")


def control_ratio(text: str) -> float:
    """Share of characters that are control characters other than ordinary whitespace."""
    if not text:
        return 0.0
    bad = sum(1 for c in text if (ord(c) < 32 or 0x7F <= ord(c) < 0xA0) and c not in _ALLOWED_CONTROLS)
    return bad / len(text)


def is_clean(text: str, replacement_ok: bool = False) -> bool:
    """Decoded text we would accept: hardly any control characters, and no replacement characters
    unless the encoding is certain (UTF-8, a BOM), where they were in the source already."""
    return (replacement_ok or "\ufffd" not in text) and "\x00" not in text and control_ratio(text) <= 0.01


def _try(data: bytes, encoding: str, replacement_ok: bool = False) -> str | None:
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None
    return text if is_clean(text, replacement_ok) else None


def _utf16_guess(data: bytes) -> str | None:
    """BOM-less UTF-16: ASCII characters put their NUL byte on one parity only."""
    if len(data) < 4 or len(data) % 2:
        return None
    even = data[0::2].count(0)
    odd = data[1::2].count(0)
    half = len(data) // 2
    if odd > 0.2 * half and even < 0.05 * half:
        return "utf-16-le"
    if even > 0.2 * half and odd < 0.05 * half:
        return "utf-16-be"
    return None


def looks_binary(data: bytes) -> bool:
    """NUL bytes or many control bytes: not a text file whatever its name says."""
    sample = data[:65536]
    if b"\x00" in sample:
        return True
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13, 11, 27))
    return controls > 0.05 * max(len(sample), 1)


def _cjk_in(text: str, encoding: str) -> float:
    """Share of the CJK characters of `text` that exist in a (narrower) encoding."""
    cjk = [c for c in text if "\u4e00" <= c <= "\u9fff"]
    if not cjk:
        return 0.0
    ok = 0
    for c in cjk:
        try:
            c.encode(encoding)
            ok += 1
        except UnicodeEncodeError:
            pass
    return ok / len(cjk)


def _common_chinese(data: bytes) -> tuple[str, str] | None:
    """GBK/GB18030 or Big5 when the bytes decode strictly to common Chinese.

    Statistical detectors need a few hundred bytes; a ten-character GBK note
    comes back as Korean or as Big5 from them. Real simplified text read as
    gb18030 is almost all GB2312 characters, and real traditional text read as
    big5 is almost all Big5 ones; mis-decodings mostly are not. GBK goes
    first: a two-character Big5 string can still read as valid simplified
    Chinese, and mainland documents are the commoner case.
    """
    for enc, common in (("gb18030", "gb2312"), ("big5", "big5")):
        text = _try(data, enc)
        if text is None or any("\ue000" <= c <= "\uf8ff" for c in text):  # private use: a misread
            continue
        if _cjk_in(text, common) >= 0.95:
            return text, enc
    return None


def _by_bom(data: bytes) -> tuple[str, str] | None:
    """The text its byte order mark names, None without one; OperatorError when it does not decode so."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            text = _try(data, enc, replacement_ok=True)
            if text is None:
                raise OperatorError("undecodable", f"has a {enc} byte order mark but does not decode as {enc}")
            return text.lstrip("\ufeff"), enc
    return None


def _first_clean(data: bytes, encodings: list[str | None], replacement_ok: bool = False) -> tuple[str, str] | None:
    """(text, encoding) of the first of `encodings` that gives clean text (None entries are skipped)."""
    for enc in encodings:
        text = _try(data, enc, replacement_ok) if enc else None
        if text is not None:
            return text, enc
    return None


def _detected(data: bytes) -> str | None:
    """charset-normalizer's best guess of the encoding, if any."""
    best = from_bytes(data).best()
    return best.encoding if best is not None else None


def _binary(data: bytes) -> tuple[str, str]:
    """Bytes that look binary: only a UTF-16/32 verdict from charset-normalizer saves them (BOM-less UTF-16
    of mostly CJK text has few NULs but many low bytes); else OperatorError binary_content."""
    detected = _detected(data)
    if detected is not None and detected.startswith(("utf_16", "utf_32")):
        found = _first_clean(data, [detected])
        if found is not None:
            return found
    raise OperatorError("binary_content", "NUL or control bytes: binary data under a text extension")


def _guessed(data: bytes, hint: str | None) -> tuple[str, str] | None:
    """Text that is neither BOM-marked nor UTF: a declared charset, common Chinese, charset-normalizer's guess,
    then the CJK fallbacks, in that order."""
    if hint:
        text = _try(data, hint)
        if text is not None:
            return text, codecs.lookup(hint).name
    # before charset-normalizer, which misreads short GBK/Big5 text
    return _common_chinese(data) or _first_clean(data, [_detected(data), *_FALLBACKS])


def decode_text(data: bytes, hint: str | None = None) -> tuple[str, str]:
    """Return (text, encoding name). Raises OperatorError binary_content / undecodable."""
    found = _by_bom(data) or _first_clean(data, [_utf16_guess(data)]) or _first_clean(data, ["utf-8"], True)
    if found is not None:
        return found
    if looks_binary(data):
        return _binary(data)
    found = _guessed(data, hint)
    if found is None:
        raise OperatorError("undecodable", "no encoding gives clean text")
    return found


_SURROGATE = re.compile("[\udc80-\udcff]")


def has_bad_bytes(text: str) -> bool:
    """True for a record holding bytes `decode_records` could not decode (kept as surrogate escapes)."""
    return _SURROGATE.search(text) is not None


def decode_records(data: bytes, hint: str | None = None) -> tuple[str, str]:
    """decode_text for a file of records, where decoding trouble is judged per record.

    UTF-8 with a few undecodable lines (a minority, and not lines that read as
    common Chinese in GBK, which would make it a GBK file) is decoded with its
    bad bytes kept as surrogate escapes; everything else goes to decode_text.
    """
    if data.startswith(tuple(b for b, _ in _BOMS)) or _utf16_guess(data) or looks_binary(data):
        return decode_text(data, hint)
    lines = [ln for ln in data.split(b"\n") if ln.strip()]
    bad = []
    for ln in lines:
        try:
            ln.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(ln)
    if not bad or len(bad) * 2 > len(lines) or _common_chinese(b"\n".join(bad)) is not None:
        return decode_text(data, hint)
    return data.decode("utf-8", "surrogateescape"), "utf-8"
