"""infuse's own text mappers: data-juicer ops rewritten where theirs damage Chinese or Markdown.

Each op is `fn(texts, kinds, params) -> texts`. `kinds` is the chunk kind
(text | table | code | record) so an op can leave code layout alone.

- infuse_fix_unicode: ftfy like `fix_unicode_mapper`, but without ftfy's
  width fixing and quote uncurling, which turn ，：？！（） and “” into ASCII.
- infuse_punctuation_normalization: `punctuation_normalization_mapper`'s
  table, applied only where the punctuation is not in CJK context.
- infuse_whitespace_normalization: unicode spaces -> ' ' as
  `whitespace_normalization_mapper`, but keeps tabs and indentation of code.
- infuse_clean_copyright: removes a /* ... copyright ... */ block like
  `clean_copyright_mapper`, but strips a leading comment block only from
  code chunks and only when it mentions a copyright or licence; Markdown
  headings (# Title) and ordinary comments stay.
- infuse_clean_links: removes URLs like `clean_links_mapper`, but a URL
  ends at CJK text or full-width punctuation (theirs swallows the rest of a
  Chinese sentence) and `key:value` is not taken for a URL.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import regex

from infuse.operators.common.lang import CJK_CHAR, has_cjk

MapperFn = Callable[[list[str], Sequence[str], dict[str, Any]], list[str]]

# -- fix_unicode ---------------------------------------------------------------


def fix_unicode(texts: list[str], kinds: Sequence[str], params: dict[str, Any]) -> list[str]:
    import ftfy

    norm = (params.get("normalization") or "NFC").upper()
    if norm not in ("NFC", "NFKC", "NFD", "NFKD"):
        raise ValueError(f"normalization must be NFC, NFKC, NFD or NFKD, not {norm!r}")
    return [ftfy.fix_text(t, normalization=norm, fix_character_width=False, uncurl_quotes=False) for t in texts]


# -- punctuation_normalization -------------------------------------------------

# data-juicer's table (punctuation_normalization_mapper), less its "１" -> '"' entry.
PUNCT_TABLE = {
    "，": ",", "。": ".", "、": ",", "„": '"', "”": '"', "“": '"', "«": '"', "»": '"', "」": '"',
    "「": '"', "《": '"', "》": '"', "´": "'", "∶": ":", "：": ":", "？": "?", "！": "!", "（": "(",
    "）": ")", "；": ";", "–": "-", "—": " - ", "．": ". ", "～": "~", "’": "'", "…": "...", "━": "-",
    "〈": "<", "〉": ">", "【": "[", "】": "]", "％": "%", "►": "-",
}  # fmt: skip
_TRANSLATE = str.maketrans(PUNCT_TABLE)
# CJK context: CJK letters and the full-width / CJK-only punctuation, so that
# runs like 。” stay untouched in Chinese. “”‘’…— are shared with English, so
# they are not context themselves.
_CJK_PUNCT = "，。、：？！（）【】《》「」『』；～〈〉％．"
_P = regex.escape("".join(PUNCT_TABLE))
_NEAR = f"[{CJK_CHAR}{regex.escape(_CJK_PUNCT)}{_P}]"
# a whole run of punctuation is mapped or kept together (so ……  stays whole)
_PUNCT_RE = regex.compile(f"(?<!{_NEAR})[{_P}]+(?!{_NEAR})")


def punctuation_normalization(texts: list[str], kinds: Sequence[str], params: dict[str, Any]) -> list[str]:
    out = []
    for t in texts:
        if not has_cjk(t):
            out.append(t.translate(_TRANSLATE))
        else:
            out.append(_PUNCT_RE.sub(lambda m: m.group(0).translate(_TRANSLATE), t))
    return out


# -- whitespace_normalization --------------------------------------------------

# data-juicer's VARIOUS_WHITESPACES less ' ', '\t' (handled per kind).
_SPACES = "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\xa0\u202f\u205f\u3000\u200b\u200c\u200d\u2060\ufffc\u0085\u00ad"
_SPACE_TABLE = str.maketrans({c: " " for c in _SPACES})
_SPACE_TAB_TABLE = str.maketrans({**{c: " " for c in _SPACES}, "\t": " "})
_LEADING_BLANK = regex.compile(r"\A(?:[ \t]*\n)+")


def whitespace_normalization(texts: list[str], kinds: Sequence[str], params: dict[str, Any]) -> list[str]:
    out = []
    for t, kind in zip(texts, kinds):
        if kind == "code":  # tabs and the first line's indentation are syntax
            out.append(_LEADING_BLANK.sub("", t.translate(_SPACE_TABLE)).rstrip())
        else:
            out.append(t.translate(_SPACE_TAB_TABLE).strip())
    return out


# -- clean_copyright -----------------------------------------------------------

_BLOCK_COMMENT = regex.compile(r"/\*[^*]*\*+(?:[^/*][^*]*\*+)*/")
_COPYRIGHT = regex.compile(r"copyright|licen[cs]e|spdx-license|\(c\)|©|版权", regex.IGNORECASE)
_COMMENT_LINE = ("//", "#", "--")


def _clean_copyright_one(text: str, kind: str) -> str:
    m = _BLOCK_COMMENT.search(text)
    if m:
        if _COPYRIGHT.search(m.group(0)):
            text = text[: m.start()] + text[m.end():]
        return text
    if kind != "code":
        return text
    lines = text.split("\n")
    start = 1 if lines[0].startswith("#!") else 0  # keep a shebang
    end = start
    while end < len(lines) and (not lines[end].strip() or lines[end].lstrip().startswith(_COMMENT_LINE)):
        end += 1
    if end > start and _COPYRIGHT.search("\n".join(lines[start:end])):
        return "\n".join(lines[:start] + lines[end:])
    return text


def clean_copyright(texts: list[str], kinds: Sequence[str], params: dict[str, Any]) -> list[str]:
    return [_clean_copyright_one(t, k) for t, k in zip(texts, kinds)]


# -- clean_links ---------------------------------------------------------------

_URL_STOP = f"\\s<>\"'`()\\[\\]{{}}{CJK_CHAR}{regex.escape(_CJK_PUNCT + '“”‘’…')}"
_URL_RE = regex.compile(
    rf"(?i)\b(?:(?:https?|ftp|file|s3|hdfs)://|www\d{{0,3}}\.|[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{{2,6}}/)[^{_URL_STOP}]*"
)
_URL_TRAIL = ".,;:!?"


def clean_links(texts: list[str], kinds: Sequence[str], params: dict[str, Any]) -> list[str]:
    repl = params.get("repl", "")

    def _sub(m: regex.Match) -> str:
        url = m.group(0)
        trail = len(url) - len(url.rstrip(_URL_TRAIL))
        return repl + (url[len(url) - trail:] if trail else "")

    return [_URL_RE.sub(_sub, t) for t in texts]


INFUSE_MAPPERS: dict[str, MapperFn] = {
    "infuse_fix_unicode": fix_unicode,
    "infuse_punctuation_normalization": punctuation_normalization,
    "infuse_whitespace_normalization": whitespace_normalization,
    "infuse_clean_copyright": clean_copyright,
    "infuse_clean_links": clean_links,
}
