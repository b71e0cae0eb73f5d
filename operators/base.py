"""Shared contracts for operators: row-level failures, rejects and code versions.

An operator either returns its output or a `Reject` for each row it drops. Row
failures raise `OperatorError` (caught per row by the caller); only
infrastructure errors may escape and fail a whole step.
"""
from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import json
from pathlib import Path
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


def module_closure(roots: tuple[str, ...], prefixes: tuple[str, ...] = ("infuse.operators",)) -> list[str]:
    """Every module under `prefixes` that the roots import, directly or through each other.

    Read from the source (ast), so nothing is imported twice and a helper module
    that a step reaches only indirectly still counts.
    """
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        seen.add(name)
        parent = name.rpartition(".")[0]
        if parent:
            stack.append(parent)  # a package's __init__ runs before its modules
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import: resolve against this module's package
                    pkg = name if spec.submodule_search_locations else parent
                    for _ in range(node.level - 1):
                        pkg = pkg.rpartition(".")[0]
                    base = f"{pkg}.{base}" if base else pkg
                found = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            stack += [f for f in found if any(f == p or f.startswith(p + ".") for p in prefixes)]
    return sorted(seen)


def code_version(*module_names: str, prefixes: tuple[str, ...] = ("infuse.operators",)) -> str:
    """sha256 over the source of the given modules and every `operators` module they import.

    Cache keys include it so that editing an operator (or a helper it imports,
    or a prompt file beside it) invalidates the steps that run it, which
    Prefect's TASK_SOURCE policy alone would not notice.
    """
    digest = hashlib.sha256()
    for name in module_closure(tuple(module_names), prefixes):
        spec = importlib.util.find_spec(name)
        path = Path(spec.origin)  # type: ignore[union-attr, arg-type]
        digest.update(name.encode())
        digest.update(path.read_bytes())
        if spec.submodule_search_locations:  # a package: its data files (prompts) count too
            for data in sorted(p for ext in ("*.yaml", "*.txt", "*.json") for p in path.parent.glob(ext)):
                digest.update(data.name.encode())
                digest.update(data.read_bytes())
    return digest.hexdigest()[:16]


def stable_hash(obj: Any) -> str:
    """sha256 of a JSON-serialisable object with sorted keys."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def as_dict(obj: Any) -> dict[str, Any]:
    return asdict(obj)
