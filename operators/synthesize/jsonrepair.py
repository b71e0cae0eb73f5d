"""Read the JSON a local model meant to write.

Small models wrap JSON in code fences, put prose around it, leave trailing
commas, use single quotes or Chinese punctuation and Chinese keys. We repair
what is unambiguous and reject the rest with a reason. A base model continuing
a prefill like `[{"question": "` may stop mid-array (max_tokens) or ramble on
after it: a truncated array keeps its COMPLETE elements and is closed after the
last one (the cut-off element is dropped, so a cut-off answer never becomes a
sample); text after the first complete JSON value is ignored.
"""
from __future__ import annotations

import ast
import json
import re
from typing import Any, Iterator

QUESTION_KEYS = ("question", "q", "问题", "提问", "问", "instruction", "指令", "query", "prompt", "input_question")
ANSWER_KEYS = ("answer", "a", "答案", "回答", "答", "回复", "output", "response", "解答")
LIST_KEYS = ("qa", "qas", "qa_pairs", "pairs", "questions", "data", "items", "results", "result", "问答", "问答对",
             "问题列表", "instructions", "list")

# What small models copy from our prompts' format examples instead of writing content.
PLACEHOLDERS = {"问题", "答案", "指令", "回答", "改写后的问题", "改写后的答案", "问题1", "问题2", "...", "…",
                "question", "answer", "instruction", "rewritten question", "rewritten answer", "question 1", "question 2"}

QA_JSON_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
        "required": ["question", "answer"],
    },
}
QUESTIONS_JSON_SCHEMA: dict[str, Any] = {"type": "array", "items": {"type": "string"}}


class ParseError(ValueError):
    """`kind` is an error kind: empty_output, malformed_json or schema_invalid."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.S)
_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_TRAILING_COMMA = re.compile(r",\s*([\]}])")


_CLOSER = {"[": "]", "{": "}"}


def _structure(text: str, start: int) -> Iterator[tuple[int, str]]:
    """(index, char) of every bracket outside quoted strings from text[start], and of every quote that
    closes a string. An apostrophe inside a word ("don't") opens no string; a backslash escapes the
    next character inside one."""
    quote: str | None = None
    i = start
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
                yield i, c
        elif c in "\"'":
            if not (c == "'" and i > 0 and text[i - 1].isalnum()):
                quote = c
        elif c in "[]{}":
            yield i, c
        i += 1


def _balanced_end(text: str, start: int) -> int | None:
    """Index just past the bracket that closes text[start], honouring quoted strings; None if truncated."""
    stack: list[str] = []
    for i, c in _structure(text, start):
        if c in "[{":
            stack.append(_CLOSER[c])
        elif c in "]}":
            if not stack or stack[-1] != c:
                return None
            stack.pop()
            if not stack:
                return i + 1
    return None


def _element_ends(text: str, start: int) -> list[tuple[int, str]]:
    """Where a truncated value starting at text[start] could be cut and closed.

    Each entry is (end, closers): text[start:end] + closers is the value with
    everything after the last complete element of the OUTERMOST array
    dropped (`[...` or a wrapper `{"qa": [...`). Only points right after one
    of its elements (an object, array or string) count, so a half-written
    element is never closed. Scanning stops at a bracket that does not match
    (trailing garbage).
    """
    out: list[tuple[int, str]] = []
    stack: list[str] = []
    for i, c in _structure(text, start):
        if c in "[{":
            stack.append(_CLOSER[c])
            continue
        if c in "]}":
            if not stack or stack[-1] != c:
                break
            stack.pop()
            if not stack:
                break  # complete after all (the caller handles that case)
        if _in_outer_array(stack):  # a complete string, object or array element
            out.append((i + 1, "".join(reversed(stack))))
    return out


def _in_outer_array(stack: list[str]) -> bool:
    """The innermost open bracket is the first array opened."""
    return bool(stack) and stack[-1] == "]" and "]" not in stack[:-1]


def _salvage(text: str, start: int) -> Any:
    """A truncated array closed after its last parsable complete element, or None."""
    ends = _element_ends(text, start)
    for end, closers in reversed(ends[-20:]):  # latest cut first; a few back in case the last is junk
        try:
            value = _loads(text[start:end] + closers)
        except ValueError:
            continue
        if _plausible(value):
            return value
    return None


def _repairs(candidate: str) -> list[str]:
    """Ever more aggressive rewrites of one JSON candidate."""
    out = [candidate]
    fixed = _TRAILING_COMMA.sub(r"\1", candidate)
    out.append(fixed)
    # Chinese punctuation used as JSON syntax next to a quote: {"问题"："..."，"答案"："..."}
    zh = re.sub(r'"\s*：\s*', '": ', fixed)
    zh = re.sub(r'"\s*，\s*"', '", "', zh)
    zh = re.sub(r"}\s*，\s*{", "}, {", zh)
    out.append(zh)
    # objects with no comma between them: [{...}\n{...}]
    out.append(re.sub(r"}\s*\n\s*{", "},\n{", zh))
    return out


class _JsonNames(ast.NodeTransformer):
    """true/false/null as bare names become Python constants; text inside strings is left alone."""

    def visit_Name(self, node: ast.Name) -> ast.AST:
        consts = {"true": True, "false": False, "null": None}
        return ast.copy_location(ast.Constant(consts[node.id]), node) if node.id in consts else node


def _loads(candidate: str) -> Any:
    for text in _repairs(candidate):
        try:
            return json.loads(text, strict=False)
        except (json.JSONDecodeError, ValueError, RecursionError):
            pass
        try:  # single quotes, Python literals (trailing commas are fine there too)
            tree = _JsonNames().visit(ast.parse(text.strip(), mode="eval"))
            value = ast.literal_eval(tree)
            if isinstance(value, (list, dict)):
                return value
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            pass
    raise ValueError("not JSON")


def _plausible(value: Any) -> bool:
    if isinstance(value, dict):
        return bool(value)
    return isinstance(value, list) and any(isinstance(v, (dict, list, str)) for v in value)


def parse_json_loose(text: str | None) -> Any:
    """The first JSON array/object in `text`, repaired; raises ParseError."""
    if text is None or not text.strip():
        raise ParseError("empty_output", "the model returned no text")
    body = _THINK.sub("", text).strip()
    if not body:
        raise ParseError("empty_output", "the model returned only a <think> block")
    try:
        return json.loads(body, strict=False)
    except (json.JSONDecodeError, ValueError, RecursionError):
        pass
    for src in [m.group(1) for m in _FENCE.finditer(body)] + [body]:  # fenced blocks first, then the whole
        value = _first_value(src)
        if value is not None:
            return value
    if any(c in body for c in "[{"):
        raise ParseError("malformed_json", "no complete JSON array or object (truncated or broken output)")
    raise ParseError("malformed_json", "the output contains no JSON")


def _first_value(src: str) -> Any:
    """The first plausible array or object in src (a truncated one salvaged), or None."""
    pos = 0
    for _ in range(50):
        starts = [i for i in (src.find("[", pos), src.find("{", pos)) if i >= 0]
        if not starts:
            return None
        start = min(starts)
        end = _balanced_end(src, start)
        if end is None:  # unclosed: every later bracket is inside it, so the output is truncated
            return _salvage(src, start)
        try:
            value = _loads(src[start:end])
        except ValueError:
            pos = start + 1
            continue
        if not _plausible(value):  # e.g. a citation like [1] in prose
            pos = end
            continue
        if isinstance(value, dict):  # JSON lines: several objects one after another
            more = _more_objects(value, src[end:])
            if len(more) > 1:
                return more
        return value
    return None


def _more_objects(first: dict[str, Any], rest: str) -> list[Any]:
    """`first` and the objects that follow it, each after optional space and a comma."""
    out: list[Any] = [first]
    while True:
        m = re.match(r"\s*,?\s*(?={)", rest)
        if not m:
            return out
        end = _balanced_end(rest, m.end())
        if end is None:
            return out
        try:
            out.append(_loads(rest[m.end():end]))
        except ValueError:
            return out
        rest = rest[end:]


def _pick(d: dict[str, Any], keys: tuple[str, ...]) -> Any:
    lowered = {str(k).strip().lower(): v for k, v in d.items()}
    for k in keys:
        if k in lowered:
            return lowered[k]
    return None


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        inner = _pick(value, LIST_KEYS)
        if isinstance(inner, list):
            return inner
        if _pick(value, QUESTION_KEYS) is not None:
            return [value]
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
    raise ParseError("schema_invalid", f"expected a list of QA objects, got {type(value).__name__}")


def _text(v: Any) -> str:
    if isinstance(v, str):
        return v.strip()
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    return ""


def extract_qa(value: Any) -> tuple[list[tuple[str, str]], int]:
    """(question, answer) pairs from parsed JSON, and how many entries were invalid.

    Raises ParseError('schema_invalid') when no entry is a valid pair.
    """
    pairs: list[tuple[str, str]] = []
    invalid = 0
    for entry in _as_list(value):
        q = a = ""
        if isinstance(entry, dict):
            q, a = _text(_pick(entry, QUESTION_KEYS)), _text(_pick(entry, ANSWER_KEYS))
        elif isinstance(entry, (list, tuple)) and len(entry) == 2:
            q, a = _text(entry[0]), _text(entry[1])
        # an "answer" that repeats its question (a small model looping) answers nothing
        if q and a and q != a and q.lower() not in PLACEHOLDERS and a.lower() not in PLACEHOLDERS:
            pairs.append((q, a))
        else:
            invalid += 1
    if not pairs:
        raise ParseError("schema_invalid", f"no entry has a real question and answer ({invalid} empty or echoing the format example)")
    return pairs, invalid


def extract_questions(value: Any) -> list[str]:
    """Question strings from parsed JSON: a list of strings or of objects with a question key."""
    out: list[str] = []
    for entry in _as_list(value):
        q = _text(entry) if not isinstance(entry, dict) else _text(_pick(entry, QUESTION_KEYS))
        if q and q.lower() not in PLACEHOLDERS:
            out.append(q)
    if not out:
        raise ParseError("schema_invalid", "no question strings in the output")
    return out


def parse_qa(text: str | None) -> list[tuple[str, str]]:
    return extract_qa(parse_json_loose(text))[0]


def parse_questions(text: str | None) -> list[str]:
    return extract_questions(parse_json_loose(text))
