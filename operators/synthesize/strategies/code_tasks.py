"""code_tasks: trigger-style code tasks (function summary, explanation, translation) answered by the LLM.

Code files and code blocks of other documents (chunks of kind "code": a fenced
or <pre> block of Markdown/HTML) alike. The code goes into the user turn as a
fenced block, so it is never read as prose of the question.
"""
from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from infuse.operators.synthesize.config import SynthConfig
from infuse.operators.synthesize.schema import WorkItem
from infuse.operators.synthesize.trigger import TriggerStrategy

PROMPT = "code_tasks"

# extension -> (Chinese name, English name) of the programming language
LANGS = {
    "c": ("C语言", "C"), "h": ("C语言", "C"), "cpp": ("C++", "C++"), "cc": ("C++", "C++"), "hpp": ("C++", "C++"),
    "py": ("Python", "Python"), "java": ("Java", "Java"), "js": ("JavaScript", "JavaScript"),
    "ts": ("TypeScript", "TypeScript"), "go": ("Go", "Go"), "rs": ("Rust", "Rust"), "rb": ("Ruby", "Ruby"),
    "php": ("PHP", "PHP"), "cs": ("C#", "C#"), "kt": ("Kotlin", "Kotlin"), "swift": ("Swift", "Swift"),
    "scala": ("Scala", "Scala"), "sh": ("Shell", "Shell"), "sql": ("SQL", "SQL"), "lua": ("Lua", "Lua"),
    "r": ("R", "R"), "m": ("MATLAB", "MATLAB"),
}


# a fence's info string (```bash) -> the extension above
FENCE_NAMES = {"python": "py", "python3": "py", "bash": "sh", "shell": "sh", "zsh": "sh", "console": "sh",
               "c++": "cpp", "javascript": "js", "typescript": "ts", "golang": "go", "rust": "rs", "ruby": "rb",
               "csharp": "cs", "kotlin": "kt", "matlab": "m"}
_FENCE_OPEN = re.compile(r"^\s*(```+|~~~+)[ \t]*([\w+#.-]*)[^\n]*\n")


def fence_info(text: str) -> str:
    """The language named by a fenced block's opening line ("```bash" -> "bash"); "" when none."""
    m = _FENCE_OPEN.match(text or "")
    return m.group(2).lower() if m else ""


def fenced(text: str, info: str = "") -> str:
    """The code as one fenced block (a block that is already fenced is kept as it is)."""
    if _FENCE_OPEN.match(text or ""):
        return text.strip()
    fence = "````" if "```" in text else "```"
    return f"{fence}{info}\n{text.strip(chr(10))}\n{fence}"


def code_language(path: str, fmt: str, lang: str, info: str = "") -> str:
    ext = FENCE_NAMES.get(info, info) if info else ""
    if ext not in LANGS:
        ext = PurePosixPath(path or "").suffix.lstrip(".").lower() or (fmt or "").lower()
    zh, en = LANGS.get(ext, ("", ""))
    if not zh:
        return "" if lang == "zh" else "source"
    return zh if lang == "zh" else en


class CodeTasks(TriggerStrategy):
    name = "code_tasks"
    order = 30
    prompts = (PROMPT,)

    def tasks(self, cfg: SynthConfig) -> list[str]:
        return list(cfg.code.tasks)

    def values(self, item: WorkItem, chunk: dict[str, Any], cfg: SynthConfig) -> dict[str, Any]:
        info = fence_info(chunk["text"])  # a block of a Markdown document names its language, a file its extension
        ext = PurePosixPath(chunk.get("path", "") or "").suffix.lstrip(".").lower()
        return {"code": fenced(chunk["text"], ext if ext in LANGS else ""),
                "code_lang": code_language(chunk.get("path", ""), item.format, item.lang, info),
                "target_lang": cfg.code.target_lang}
