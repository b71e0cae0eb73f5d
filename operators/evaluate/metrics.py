"""Scores of one answer against its reference: strict, token F1, ROUGE-L F1, contains; bootstrap CIs over items.

Tokens are those of `infuse.operators.common.tokens`: a Chinese character is one
token, an English word is one token (after NFKC and case folding, punctuation
dropped), so "char-level" F1 means characters for Chinese and words for
English with one function. A score against several references (the answer
and its aliases) is the best of them, as in SQuAD.

`strict` is the knowledge score: containment gave credit for `LOTUS_EIO (-4)`
against `LOTUS_EIO (-5)` and for a bare "2" inside an unrelated sentence, so
strict asks for every number, date and code of the reference as a whole value,
and for no other value of the same kind where the reference's belongs (see
`strict_detail`). `degenerate` flags answers that only echo the question or
loop; such an answer never scores strict 1 (the evaluate step zeroes it).
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import regex

from infuse.operators.common.lang import CJK_CHAR
from infuse.operators.common.tokens import tokens


def f1(pred: str, ref: str) -> float:
    """Harmonic mean of token precision and recall (multiset overlap)."""
    p, r = tokens(pred), tokens(ref)
    if not p or not r:
        return float(p == r)
    common = sum((Counter(p) & Counter(r)).values())
    if common == 0:
        return 0.0
    prec, rec = common / len(p), common / len(r)
    return 2 * prec * rec / (prec + rec)


def lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            cur[j] = prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1])
        prev = cur
    return prev[-1]


def rouge_l(pred: str, ref: str, max_tokens: int = 2000) -> float:
    """ROUGE-L F1: longest common token subsequence over both lengths."""
    p, r = tokens(pred)[:max_tokens], tokens(ref)[:max_tokens]
    if not p or not r:
        return float(p == r)
    n = lcs(p, r)
    if n == 0:
        return 0.0
    prec, rec = n / len(p), n / len(r)
    return 2 * prec * rec / (prec + rec)


def contains(pred: str, refs: list[str]) -> bool:
    """Whether one reference (or alias), as a whole token sequence, appears in the answer."""
    hay = " " + " ".join(tokens(pred)) + " "
    return any(needle.strip() and f" {needle} " in hay for needle in (" ".join(tokens(r)) for r in refs))


def score(pred: str | None, ref: str, aliases: list[str] | None = None, question: str = "") -> dict[str, float]:
    """Every per-answer metric against the reference and its aliases (best of them)."""
    refs = [ref, *(aliases or [])]
    pred = pred or ""
    return {"strict": strict(pred, ref, aliases, question), "f1": max(f1(pred, r) for r in refs),
            "rouge_l": max(rouge_l(pred, r) for r in refs), "contains": float(contains(pred, refs))}


# ---- strict: the values of the reference, and no other ---------------------------------------------------------

_W = "A-Za-z0-9_"  # ASCII word characters: a value's edges (CJK text may touch a value directly: 端口为7420)
# unit spelling -> canonical unit; a unit not listed stays itself (casefolded)
_UNIT_CANON = {
    "%": "%", "percent": "%", "b": "byte", "byte": "byte", "bytes": "byte", "字节": "byte", "kb": "kb", "mb": "mb",
    "gb": "gb", "tb": "tb", "kib": "kib", "mib": "mib", "gib": "gib", "tib": "tib", "ms": "ms", "毫秒": "ms",
    "millisecond": "ms", "milliseconds": "ms", "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
    "秒": "s", "秒钟": "s", "min": "min", "mins": "min", "minute": "min", "minutes": "min", "分钟": "min", "h": "h",
    "hr": "h", "hrs": "h", "hour": "h", "hours": "h", "小时": "h", "个小时": "h", "day": "d", "days": "d", "天": "d",
    "week": "wk", "weeks": "wk", "周": "wk", "个星期": "wk", "month": "mo", "months": "mo", "个月": "mo",
    "year": "y", "years": "y", "年": "y", "node": "node", "nodes": "node", "节点": "node", "个节点": "node",
    "replica": "replica", "replicas": "replica", "副本": "replica", "个副本": "replica", "thread": "thread",
    "threads": "thread", "线程": "thread", "个线程": "thread", "time": "times", "times": "times", "次": "times",
    "request": "request", "requests": "request", "元": "yuan", "美元": "usd", "usd": "usd", "eur": "eur",
    "rmb": "yuan", "°c": "°c", "km": "km", "m": "m", "kg": "kg", "ghz": "ghz", "mhz": "mhz", "个": "个", "条": "条",
    "台": "台", "人": "人", "万": "万", "亿": "亿", "qps": "qps", "rps": "rps", "tps": "tps", "mbps": "mbps",
    "gbps": "gbps", "kbps": "kbps"}
_UNITS = "|".join(re.escape(u) for u in sorted(_UNIT_CANON, key=len, reverse=True))
_VALUE = re.compile(
    rf"(?P<date>(?<![0-9])\d{{4}}(?:(?P<sep>[-/.])\d{{1,2}}(?P=sep)\d{{1,2}}|年\d{{1,2}}月(?:\d{{1,2}}[日号])?)(?![0-9]))"
    rf"|(?P<url>[A-Za-z][A-Za-z0-9+.-]*://[^\s<>\"'，。；、）)]+)"
    rf"|(?P<email>(?<![{_W}.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)"
    rf"|(?P<path>(?<![{_W}./~])(?:~|\.{{1,2}})?/?[{_W}.-]+(?:/[{_W}.-]+)+/?"
    rf"|(?<![{_W}./~])~?/[{_W}.-]*[A-Za-z][{_W}.-]*)"
    rf"|(?P<num>(?:(?<![{_W}.])[-+−](?=\d)|(?<![{_W}.]))(?:\d{{1,3}}(?:,\d{{3}})+(?!\d)|\d+)(?:\.\d+)*)"
    rf"(?:\s?(?P<unit>(?i:{_UNITS})))?(?![{_W}])"
    rf"|(?P<word>(?<![{_W}])[{_W}]+(?:[.\-][{_W}]+)*)")
_KINDS = ("date", "url", "email", "path", "num", "word")
_NOT_CODES = {"e.g", "i.e", "etc", "vs", "a.m", "p.m"}


@dataclass(frozen=True)
class Value:
    """A number, date or code as the strict score compares it: `value` normalised, `sub` the unit (numbers) or
    the shape and first segment (codes: LOTUS_EIO and LOTUS_EBUSY are the same kind, lotus_open is not)."""

    cat: str  # number | date | code
    value: str
    sub: str | None = None

    def same(self, other: "Value") -> bool:
        """The same value: numbers also when one side gives no unit (30 for 30秒), never with another unit."""
        if self.cat != other.cat or self.value != other.value:
            return False
        return self.cat != "number" or self.sub is None or other.sub is None or self.sub == other.sub

    def rivals(self, other: "Value") -> bool:
        """`other` is a value of this key's kind: a bare number key is rivalled by any number, 30秒 by seconds."""
        if self.cat != other.cat:
            return False
        if self.cat == "number":
            return self.sub is None or self.sub == other.sub
        return self.cat == "date" or self.sub == other.sub


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "").replace("−", "-").replace("–", "-")


def _snake(word: str) -> str | None:
    if "_" in word.strip("_") and (any(c.isalpha() for c in word) or any(c.isdigit() for c in word)):
        return "caps_snake" if word == word.upper() else "snake"
    return None


def _dotted(word: str) -> str | None:
    long_part = max(len(p) for p in word.split(".")) >= 2
    return "dotted" if "." in word and word.casefold() not in _NOT_CODES and long_part else None


def _alnum(word: str) -> str | None:
    """Letters with digits (SKU4471, x86), or capitals joined by hyphens (TCP-IP)."""
    if any(c.isdigit() for c in word) and any(c.isalpha() for c in word):
        return "alnum"
    if "-" in word and all(len(p) >= 2 and p.isupper() for p in word.split("-")):
        return "alnum"
    return None


def _camel(word: str) -> str | None:
    return "camel" if re.search(r"[a-z]", word) and re.search(r"[A-Z]", word[1:]) else None


_SHAPES = (_snake, _dotted, _alnum, _camel)  # the first that names a shape wins


def _code(word: str) -> Value | None:
    """A code or identifier (ALL_CAPS_SNAKE, snake_case, CamelCase, letters with digits, dotted or hyphenated
    names), a version (v2.3.1, compared as the number 2.3.1), or None for a plain word."""
    if re.fullmatch(r"[vV]\d+(?:\.\d+)*", word):
        return Value("number", word[1:])
    shape = next((found for found in (test(word) for test in _SHAPES) if found), None)
    if shape is None:
        return None
    first = re.split(r"[_.\-]|(?<=[a-z0-9])(?=[A-Z])", word.strip("_"), maxsplit=1)[0].casefold()
    return Value("code", word.casefold(), f"{shape}:{first}")


def _date(text: str) -> Value:
    y, m, d = (re.findall(r"\d+", text) + [""])[:3]
    return Value("date", f"{int(y):04d}-{int(m):02d}" + (f"-{int(d):02d}" if d else ""))


def values(text: str) -> list[Value | str]:
    """The text as a sequence of values and plain tokens (`tokens`: CJK characters, casefolded words)."""
    text = _norm(text)
    out: list[Value | str] = []
    at = 0
    for m in _VALUE.finditer(text):
        out += tokens(text[at : m.start()])
        at = m.end()
        kind, raw = next(k for k in _KINDS if m.group(k) is not None), m.group(0)
        if kind == "date":
            out.append(_date(raw))
        elif kind == "path" and not re.match(r"[/~.]|.*/.*/|.*\.", raw):
            out += values(raw.replace("/", " "))  # I/O, TCP/IP, 3/4: words and numbers, not a path
        elif kind in ("url", "email", "path"):
            raw = raw.rstrip(".-")
            out.append(Value("code", raw.casefold(), f"{kind}:"))
            at = m.start() + len(raw)
        elif kind == "num":
            unit = m.group("unit")
            number = m.group("num").lstrip("+").replace(",", "")
            out.append(Value("number", number, _UNIT_CANON.get(unit.casefold(), unit.casefold()) if unit else None))
        else:
            code = _code(raw)
            out += [code] if code else tokens(raw)
    return out + tokens(text[at:])


def keys(text: str) -> list[Value]:
    """The key values of a reference: its numbers, dates and codes, each once, in order."""
    return list(dict.fromkeys(v for v in values(text) if isinstance(v, Value)))


def _parts(v: Value) -> list[Value]:
    """A code's all-digit parts as numbers (SKU-4471 states 4471), for matching only, never as a rival."""
    if v.cat != "code":
        return [v]
    return [v] + [Value("number", p) for p in re.split(r"[-_./:@]", v.value) if p.isdigit()]


def _among(v: Value, others: list[Value]) -> bool:
    """Whether `v` is one of `others` (the same value; see Value.same)."""
    return any(v.same(o) for o in others)


def _one(given: list[Value], ref_text: str, allowed: list[Value], asked: list[Value]) -> dict[str, Any]:
    """strict_detail against one reference: its keys present, no rival value stated beside them. `given`: the
    answer's values, in order."""
    ks = keys(ref_text)
    missing = _missing(ks, given, asked)
    conflicting = [v for v in given if not _among(v, allowed + asked) and any(k.rivals(v) for k in ks)]
    return {"ok": not missing and not conflicting, "missing": [_show(k) for k in missing],
            "conflicting": list(dict.fromkeys(_show(v) for v in conflicting)), "keys": [_show(k) for k in ks]}


def _missing(ks: list[Value], given: list[Value], asked: list[Value]) -> list[Value]:
    """The keys the answer does not state (a code's digit parts count: SKU-4471 states 4471). Keys the question
    states are not required, unless they are all the reference has: restating the question proves nothing."""
    stated = [p for v in given for p in _parts(v)]
    must = [k for k in ks if not _among(k, asked)] or ks
    return [k for k in must if not _among(k, stated)]


def _contained(pred: str, ref: str) -> dict[str, Any]:
    """strict_detail against a reference with no key (a name, a word): whole-token containment."""
    ok = contains(pred, [ref])
    return {"ok": ok, "missing": [] if ok else [ref], "conflicting": [], "keys": []}


def _values_in(text: str) -> list[Value]:
    """The text's numbers, dates and codes, in order (repeats kept)."""
    return [v for v in values(text) if isinstance(v, Value)]


def _show(v: Value) -> str:
    return v.value + (v.sub if v.cat == "number" and v.sub else "")


def strict_detail(pred: str | None, ref: str, aliases: list[str] | None = None, question: str = "") -> dict[str, Any]:
    """Whether the answer states the reference's values and no rival one, best over the reference and aliases.

    Keys are the reference's numbers (with unit: 512MB, 30秒, 15%, -5, 2.3.1), dates and codes (LOTUS_EIO,
    lotus_open, LotusDB, SKU-4471, a/b/c.yaml, x@y.com). The answer must state each as a whole value (15 is not
    in 150, -5 not in -50), and must state no rival: a value of a key's kind that is neither a key (of the
    reference or an alias) nor in the question. A key's kind: any number for a bare number (the answer's only
    number must be it), numbers of the same unit for 30秒 (so 最多重试3次 beside it is fine, 30秒或60秒 is not),
    any date for a date, codes of the same shape and first segment for a code (LOTUS_EBUSY rivals LOTUS_EIO,
    lotus_open does not). So the value where the reference's belongs (LOTUS_EIO (-4) for LOTUS_EIO (-5)) is a
    rival, "The default port of Foo is 7420." passes for 7420, and "Version 2 supports 16 nodes and 4 replicas"
    fails for 2. Keys the question already states are not required unless they are all the reference has.
    With no key (a name, a word) it is whole-token containment.
    """
    cands = [r for r in [ref, *(aliases or [])] if r and r.strip()]
    given = _values_in(pred or "")
    allowed = [k for c in cands for k in keys(c)]
    asked = _values_in(question)
    best: dict[str, Any] | None = None
    for c in cands:
        d = _one(given, c, allowed, asked) if keys(c) else _contained(pred or "", c)
        if d["ok"]:
            return d
        best = best or d
    return best or {"ok": False, "missing": [], "conflicting": [], "keys": []}


def strict(pred: str | None, ref: str, aliases: list[str] | None = None, question: str = "") -> float:
    """1.0 when `strict_detail` says ok, else 0.0."""
    return float(strict_detail(pred, ref, aliases, question)["ok"])


# ---- degenerate answers: empty, an echo of the question, a loop ------------------------------------------------

_RAW = regex.compile(f"[{CJK_CHAR}]|[^\\W{CJK_CHAR}]+|[^\\w\\s]")
_ASK_WORDS = {"what", "which", "who", "whom", "whose", "when", "where", "why", "how"}
_ASK_CHARS = {"什", "哪", "几", "吗", "谁", "怎", "呢", "否", "何", "少"}


def _asking(q: list[str]) -> set[int]:
    """Positions of the question's asking words (what, 什么, 多少, 吗): a restatement drops them, an echo keeps."""
    return {i for i, t in enumerate(q) if t in _ASK_WORDS or t in _ASK_CHARS}


def _echoed(a: list[str], q: list[str]) -> int:
    """How many answer tokens lie in near-whole copies of the question (>= 80% of it, its asking word kept)."""
    need, ask = max(2, math.ceil(0.8 * len(q))), _asking(q)
    covered, i = 0, 0
    while i < len(a):
        best = 0
        for j in range(len(q)):
            k = 0
            while i + k < len(a) and j + k < len(q) and a[i + k] == q[j + k]:
                k += 1
            if k >= need and k > best and (not ask or any(j <= p < j + k for p in ask)):
                best = k
        covered += best
        i += best or 1
    return covered


def _looping(t: list[str]) -> bool:
    """Mostly one n-gram over and over: few distinct 4-grams (1-grams for a short answer)."""
    if len(t) < 4:
        return False
    n = 1 if len(t) < 12 else 4
    grams = [tuple(t[i : i + n]) for i in range(len(t) - n + 1)]
    return len(set(grams)) / len(grams) <= (0.34 if n == 1 else 0.5)


_SENTENCE = regex.compile(r"[^。！？!?\n]+?(?:[。！？!?]+|\.(?=\s|$)|\n|$)")


def first_pass(answer: str | None) -> str:
    """The answer up to where it starts saying the same sentence again ("X is -2. X is -2. X is -2..." -> "X is
    -2."): what the model stated, before a loop that max_new_tokens cut. Scored instead of the whole text, so a
    right first statement is not lost to its echo, nor a wrong value in a later loop counted."""
    text = answer or ""
    seen: set[str] = set()
    for m in _SENTENCE.finditer(text):
        key = f" {' '.join(tokens(m.group(0)))} "
        if key.strip() and any(key.endswith(k) for k in seen):  # said again, maybe behind some junk tokens
            return text[: m.start()].rstrip()
        if len(key.split()) >= 2:
            seen.add(key)
    return text


def degenerate(answer: str | None, question: str) -> str | None:
    """"empty", "echo" (mostly the question repeated), "repeat" (mostly itself repeated: `| | | |`, a loop) or
    None. WHY: such answers can contain the reference by accident (an echoed question holds its names), so
    they must not count as knowing the fact."""
    text = unicodedata.normalize("NFKC", answer or "").casefold()
    if not text.strip():
        return "empty"
    a, q = tokens(text), tokens(question)
    if a and q and _echoed(a, q) >= 0.6 * len(a):
        return "echo"
    if _looping(_RAW.findall(text)):
        return "repeat"
    return None if a else "empty"


def bootstrap_ci(values: list[float], n: int = 1000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float, float]:
    """Mean and the (alpha/2, 1-alpha/2) percentile interval of the mean over resampled items."""
    x = np.asarray([v for v in values if v is not None and not np.isnan(v)], dtype=float)
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    if len(x) == 1 or n <= 0:
        return float(x.mean()), float(x.mean()), float(x.mean())
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n, len(x)))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(x.mean()), float(lo), float(hi)
