"""Script detection, the one detector every step uses: is a text CJK (a word-less script) or not?

WHY: several data-juicer ops assume space-separated words, synthesis picks
its prompt language by it, and qa_filter checks a sample keeps one language.
"zh" means CJK-dominant (Chinese, Japanese, Korean); "en" means any
space-separated script.
"""
from __future__ import annotations

import regex

CJK_CHAR = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}"
_CJK = regex.compile(f"[{CJK_CHAR}]")
_LETTER = regex.compile(r"\p{L}")

LANGS = ("zh", "en")
ZH_THRESHOLD = 0.2


def cjk_ratio(text: str) -> float:
    """CJK characters over all letters (digits, punctuation and spaces ignored); 0 when there are none.

    A CJK character carries about a word's worth of text, so a 20% share
    already means a large part of the words are CJK.
    """
    letters = len(_LETTER.findall(text))
    return len(_CJK.findall(text)) / letters if letters else 0.0


def detect_lang(text: str | None, threshold: float = ZH_THRESHOLD, forced: str = "auto") -> str:
    """'zh' when at least `threshold` of the letters (of the first 4000 chars) are CJK, else 'en'."""
    if forced in LANGS:
        return forced
    if not text:
        return "en"
    return "zh" if cjk_ratio(text[:4000]) >= threshold else "en"


def has_cjk(text: str) -> bool:
    return _CJK.search(text) is not None


def estimate_tokens(text: str) -> int:
    """~1 token per 1.5 CJK chars and per 4 other chars: the no-tokenizer estimate for planning."""
    cjk = len(_CJK.findall(text))
    return int(round(cjk / 1.5 + (len(text) - cjk) / 4.0))


# ---------------------------------------------------------------- prose language
# WHY: technical Chinese is full of identifiers (lotus_open, LOTUS_EBUSY, WAL, `wal_sync`) and code,
# which a character ratio counts as English. What makes a sample "mixed" is PROSE of two languages:
# "我是the LotusDB team开发的" or "What is the 处理建议 of X?". So English is counted only in runs of
# ordinary words that hold a function word ("the", "of", "is", ...), never identifiers or code.

_FENCED = regex.compile(r"(```|~~~)[^\n]*\n.*?(?:\n\1|\Z)", regex.S)
_INLINE = regex.compile(r"`[^`\n]+`")
_URLISH = regex.compile(r"\b(?:https?|ftp)://\S+|\bwww\.\S+|[\w.+-]+@[\w-]+\.[\w.]+|(?<![\w])[~.]?/[\w.\-/]+")
# a CJK run | a Latin token (words with inner - ' . _ and digits) | a number | anything else (one char)
_PIECE = regex.compile(f"(?P<cjk>[{CJK_CHAR}]+)|(?P<word>[\\p{{Latin}}][\\p{{Latin}}\\p{{N}}_'’.\\-]*[\\p{{Latin}}\\p{{N}}_]|[\\p{{Latin}}])"
                       r"|(?P<num>\p{N}[\p{N}.,:%x]*)|(?P<space>[ \t]+)|(?P<other>.)", regex.S)
# what may sit inside one English run besides words and numbers (not . ! ? or a newline: they end it)
_RUN_GLUE = set(" \t,;:'\"()[]-–—/&+*=<>#")
FUNCTION_WORDS = frozenset("""
a an the of to in on at by for with from into about as and or but not no nor if than then so is are was were be
been being am do does did has have had will would can could shall should may might must this that these those it
its it's i me my we our you your he she they them their his her who whom which what when where why how there here
all any each every some such only also very more most please tell describe explain what's let's
""".split())
CJK_PER_WORD = 1.5  # CJK characters per English word, for comparing amounts of prose


def strip_code(text: str) -> str:
    """Text without fenced blocks, inline code, URLs, e-mail addresses and paths: what is left is prose."""
    text = _FENCED.sub("\n", text or "")
    text = _INLINE.sub(" ", text)
    return _URLISH.sub(" ", text)


def is_identifier(word: str) -> bool:
    """lotus_open, LOTUS_EBUSY, WAL, LotusDB, macOS, v2, file.h, copy-on-write: names, not prose words."""
    if any(c.isdigit() or c in "_.-" for c in word):
        return True
    if len(word) >= 2 and word.isupper():
        return True
    if any(c.isupper() for c in word[1:]):
        return True
    return len(word) == 1 and word.isupper() and word != "I"


def prose_runs(text: str) -> list[tuple[str, str, float]]:
    """(lang, run text, units) for each stretch of prose: a CJK run (units = chars / CJK_PER_WORD)
    or an English run of words holding a function word (units = its non-identifier words; runs of
    fewer than 2 such words are left out). Code, identifiers and numbers count for nothing."""
    out: list[tuple[str, str, float]] = []
    run: list[str] = []  # pieces of the English run being built
    words = 0
    has_function = False

    def close() -> None:
        nonlocal run, words, has_function
        if run and words >= 2 and has_function:
            out.append(("en", "".join(run).strip(" \t,;:'\"()[]-–—/&+*=<>#"), float(words)))
        run, words, has_function = [], 0, False

    for m in _PIECE.finditer(strip_code(text)):
        kind, piece = m.lastgroup, m.group()
        if kind == "cjk":
            close()
            out.append(("zh", piece, len(piece) / CJK_PER_WORD))
        elif kind == "word":
            run.append(piece)
            if not is_identifier(piece):
                words += 1
            has_function = has_function or piece.lower() in FUNCTION_WORDS
        elif kind == "num" or kind == "space" or piece in _RUN_GLUE:
            if run or kind == "num":
                run.append(piece)
        else:
            close()
    close()
    return out


def majority(runs: list[tuple[str, str, float]], min_units: float = 1.0) -> str | None:
    """The language with more prose in `runs`; None when there is too little to tell."""
    zh = sum(u for lang, _, u in runs if lang == "zh")
    en = sum(u for lang, _, u in runs if lang == "en")
    if max(zh, en) < min_units or zh == en:
        return None
    return "zh" if zh > en else "en"


def prose_lang(text: str, fallback: str = "en") -> str:
    """The language of a text's prose; `fallback` when it has too little prose to tell (code, numbers)."""
    return majority(prose_runs(text)) or fallback
