"""What the evaluation asks of its caller's framework: a memo for finished answers, progress bars, a work dir
that survives a kill, a warning log, and optionally the synthesis LLM (tests pass a scripted one)."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from infuse.operators.llm import LLMBackend

Progress = Callable[[int, str, str], AbstractContextManager[Any]]  # (total, description, unit) -> a bar


class Memo(Protocol):
    """Where finished answers are kept across runs (the framework's ItemMemo)."""

    hits: int
    misses: int

    def get(self, key: str) -> tuple[Any, dict[str, str]] | None: ...

    def put(self, entries: Iterable[tuple[str, Any, dict[str, str] | None]]) -> None: ...

    def finish(self, keep: Iterable[str]) -> None: ...

    def stats(self) -> dict[str, int]: ...


@dataclass
class Services:
    """The caller's machinery the evaluation uses."""

    memo: Memo  # finished answers, kept across runs
    progress: Progress
    work_dir: Path  # survives a kill: paraphrases, merged adapters, the base model's view
    warn: Callable[[str], None] = logging.getLogger("infuse.evaluate").warning
    synth: Callable[[], LLMBackend] | None = None  # paraphrases and judge; None: the options' synth LLM
