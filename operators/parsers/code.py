"""Source code: text as is, language from the extension, top-level definitions as sections.

The regexes are deliberately cheap: they only need to find the usual function
and class heads at column 0 so chunking can split on them.
"""
from __future__ import annotations

import re
from pathlib import PurePosixPath

from infuse.operators.parsers.document import ParsedDoc
from infuse.operators.parsers.sections import build_sections
from infuse.operators.parsers.textdecode import decode_text
from infuse.operators.parsers.txt import normalise_newlines

LANGUAGES = {
    ".py": "python", ".pyi": "python", ".c": "c", ".h": "c", ".cpp": "cpp", ".hpp": "cpp", ".cc": "cpp",
    ".cxx": "cpp", ".hh": "cpp", ".java": "java", ".js": "javascript", ".mjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".tsx": "typescript", ".go": "go", ".rs": "rust", ".sh": "shell", ".bash": "shell",
    ".sql": "sql", ".rb": "ruby", ".php": "php", ".kt": "kotlin", ".swift": "swift", ".cs": "csharp",
    ".scala": "scala", ".lua": "lua", ".r": "r", ".pl": "perl",
}

_C_KEYWORDS = {"if", "for", "while", "switch", "return", "else", "do", "sizeof", "case"}
_PATTERNS: dict[str, list[re.Pattern[str]]] = {
    "python": [re.compile(r"^(?:async\s+def|def|class)\s+(\w+)")],
    "c": [re.compile(r"^(?!\s)(?:[\w\*&:<>,]+\s+)+\**\s*(\w+)\s*\([^;]*\)\s*(?:const\s*)?\{?\s*$"),
          re.compile(r"^(?:typedef\s+)?struct\s+(\w+)\s*\{")],
    "javascript": [re.compile(r"^(?:export\s+)?(?:default\s+)?(?:async\s+)?(?:function\*?|class)\s+(\w+)"),
                   re.compile(r"^(?:export\s+)?(?:const|let|var)\s+(\w+)\s*=\s*(?:async\s*)?\(.*\)\s*=>")],
    "go": [re.compile(r"^func\s+(?:\([^)]*\)\s*)?(\w+)"), re.compile(r"^type\s+(\w+)\s+(?:struct|interface)")],
    "rust": [re.compile(r"^(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?(?:fn|struct|enum|trait|impl(?:<[^>]*>)?)\s+(\w+)")],
    "java": [re.compile(r"^(?:public\s+|final\s+|abstract\s+)*(?:class|interface|enum|record)\s+(\w+)")],
    "shell": [re.compile(r"^(?:function\s+)?([\w-]+)\s*\(\)\s*\{?")],
    "sql": [re.compile(r"^CREATE\s+(?:OR\s+REPLACE\s+)?(?:TABLE|VIEW|FUNCTION|PROCEDURE|INDEX|TRIGGER)\s+"
                       r"(?:IF\s+NOT\s+EXISTS\s+)?([\w.\"`]+)", re.IGNORECASE)],
}
_PATTERNS["cpp"] = _PATTERNS["c"] + [re.compile(r"^(?:class|namespace)\s+(\w+)")]
_PATTERNS["typescript"] = _PATTERNS["javascript"] + [re.compile(r"^(?:export\s+)?(?:interface|type)\s+(\w+)")]
_PATTERNS["csharp"] = _PATTERNS["java"]
_PATTERNS["kotlin"] = [re.compile(r"^(?:fun|class|object|interface)\s+(\w+)")]
_PREFIX = re.compile(r"^\s*(?:#|//|/\*|\*|@|--|\"\"\"|///)")


def code_heads(text: str, language: str) -> list[tuple[int, str, int]]:
    """(1, name, start) per top-level definition; the start includes comments/decorators just above it."""
    patterns = _PATTERNS.get(language, [])
    if not patterns:
        return []
    lines = text.split("\n")
    offsets = []
    pos = 0
    for line in lines:
        offsets.append(pos)
        pos += len(line) + 1
    heads: list[tuple[int, str, int]] = []
    taken = -1
    for i, line in enumerate(lines):
        for pattern in patterns:
            m = pattern.match(line)
            if not m or m.group(1) in _C_KEYWORDS:
                continue
            first = i
            while first - 1 > taken and lines[first - 1].strip() and _PREFIX.match(lines[first - 1]):
                first -= 1
            heads.append((1, m.group(1), offsets[first]))
            taken = i
            break
    return heads


class CodeParser:
    format = "code"
    extensions = tuple(LANGUAGES)
    multi = False

    def parse(self, data: bytes, path: str) -> ParsedDoc:
        text, encoding = decode_text(data)
        text = normalise_newlines(text)
        language = LANGUAGES.get(PurePosixPath(path).suffix.lower(), "unknown")
        heads = code_heads(text, language)
        return ParsedDoc(
            title=PurePosixPath(path).name,
            text=text,
            sections=build_sections(heads, len(text)),
            metadata={"encoding": encoding, "language": language, "lines": text.count("\n") + 1,
                      "definitions": [h[1] for h in heads]},
        )
