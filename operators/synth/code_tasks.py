"""code_tasks: trigger-style code tasks (function summary, explanation, translation) answered by the LLM."""
from __future__ import annotations

from pathlib import PurePosixPath

from infuse.operators.synth.core import Context, Gen, Track
from infuse.operators.synth.schema import WorkItem
from infuse.operators.synth.trigger import run_tasks

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


def code_language(path: str, fmt: str, lang: str) -> str:
    ext = PurePosixPath(path or "").suffix.lstrip(".").lower() or (fmt or "").lower()
    zh, en = LANGS.get(ext, ("", ""))
    if not zh:
        return "" if lang == "zh" else "source"
    return zh if lang == "zh" else en


def run(item: WorkItem, ctx: Context, track: Track) -> Gen:
    chunk = ctx.chunk(item.chunk_id)
    cfg = ctx.cfg
    values = {"code": chunk["text"], "code_lang": code_language(chunk.get("path", ""), item.format, item.lang),
              "target_lang": cfg.code.target_lang}
    return (yield from run_tasks(item, ctx, track, PROMPT, "code_tasks", list(cfg.code.tasks), values))
