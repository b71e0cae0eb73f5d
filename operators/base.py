"""Shared contracts for operators: row-level failures, rejects and code versions.

An operator either returns its output or a `Reject` for each row it drops. Row
failures raise `OperatorError` (caught per row by the caller); only
infrastructure errors may escape and fail a whole step.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Reject:
    """One dropped item: which id, why (a short code) and a human message."""

    id: str
    reason: str
    message: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_row(self, step: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "step": step,
            "reason": self.reason,
            "message": self.message,
            "detail": json.dumps(self.detail, ensure_ascii=False, default=str),
        }


class OperatorError(Exception):
    """A failure of one row (a file, a chunk, an LLM call), never of the run."""

    def __init__(self, reason: str, message: str, **detail: Any) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.detail = detail

    def to_reject(self, item_id: str) -> Reject:
        return Reject(item_id, self.reason, self.message, dict(self.detail))


def code_version(*module_names: str) -> str:
    """sha256 over the source of the given modules (packages: every .py under them).

    Cache keys include it so that editing an operator invalidates its step,
    which Prefect's TASK_SOURCE policy alone would not notice.
    """
    digest = hashlib.sha256()
    for name in sorted(module_names):
        module = importlib.import_module(name)
        files = []
        path = getattr(module, "__path__", None)
        if path:  # a package: hash every source file in it
            from pathlib import Path

            for root in path:
                files.extend(sorted(Path(root).rglob("*.py")))
                files.extend(sorted(Path(root).rglob("*.txt")))
                files.extend(sorted(Path(root).rglob("*.yaml")))
        else:
            from pathlib import Path

            files.append(Path(inspect.getfile(module)))
        for f in files:
            digest.update(str(f.name).encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


def stable_hash(obj: Any) -> str:
    """sha256 of a JSON-serialisable object with sorted keys."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def as_dict(obj: Any) -> dict[str, Any]:
    return asdict(obj)
