"""Shared contracts for operators: row-level failures, rejects, strict configs and code versions.

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
import threading
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_jsonable_python


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

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Reject":
        detail = json.loads(row.get("detail") or "{}")
        return cls(row["id"], row["reason"], row.get("message") or "", detail if isinstance(detail, dict) else {})


class Interrupted(Exception):
    """The run was asked to stop (SIGTERM, Ctrl-C): finished work is committed, the rest is not started."""


# Set by the flow's signal handler; long loops in operators check it between units of work.
STOP = threading.Event()


def check_stop() -> None:
    if STOP.is_set():
        raise Interrupted("stop requested")


# A progress callback an operator may be given: called with the number of units just finished.
ProgressFn = Callable[[int], None]


class OperatorError(Exception):
    """A failure of one row (a file, a chunk, an LLM call), never of the run."""

    def __init__(self, reason: str, message: str, **detail: Any) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.detail = detail

    def to_reject(self, item_id: str) -> Reject:
        return Reject(item_id, self.reason, self.message, dict(self.detail))


_IMPORTS: dict[str, tuple[str, bool, tuple[int, int], list[str]]] = {}


def _imports_of(name: str) -> tuple[str, bool, list[str]] | None:
    """(source path, is a package, every module name it imports) of one module, or None when it has no .py
    source; kept per process while the file is unchanged (steps share most of their closure)."""
    cached = _IMPORTS.get(name)
    if cached is not None and _stamp(Path(cached[0])) == cached[2]:
        return cached[0], cached[1], cached[3]
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    is_pkg = bool(spec.submodule_search_locations)
    parent = name.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(ast.parse(Path(spec.origin).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import: resolve against this module's package
                pkg = name if is_pkg else parent
                for _ in range(node.level - 1):
                    pkg = pkg.rpartition(".")[0]
                base = f"{pkg}.{base}" if base else pkg
            found += [base] + [f"{base}.{a.name}" for a in node.names]
    _IMPORTS[name] = (spec.origin, is_pkg, _stamp(Path(spec.origin)), found)
    return spec.origin, is_pkg, found


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
        found = _imports_of(name)
        if found is None:
            continue
        seen.add(name)
        parent = name.rpartition(".")[0]
        if parent:
            stack.append(parent)  # a package's __init__ runs before its modules
        stack += [f for f in found[2] if any(f == p or f.startswith(p + ".") for p in prefixes)]
    return sorted(seen)


_VERSIONS: dict[tuple[Any, ...], tuple[list[tuple[str, tuple[int, int]]], str]] = {}


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return (-1, -1)
    return (st.st_mtime_ns, st.st_size)


_DIGESTS: dict[Path, tuple[tuple[int, int], bytes]] = {}


def _file_digest(path: Path) -> bytes:
    """sha256 of a file's bytes, kept per process while the file is unchanged."""
    stamp = _stamp(path)
    cached = _DIGESTS.get(path)
    if cached is None or cached[0] != stamp:
        cached = (stamp, hashlib.sha256(path.read_bytes()).digest())
        _DIGESTS[path] = cached
    return cached[1]


def code_version(*module_names: str, prefixes: tuple[str, ...] = ("infuse.operators",)) -> str:
    """sha256 over the source of the given modules and every `operators` module they import.

    Cache keys include it so that editing an operator (or a helper it imports,
    or a prompt file beside it) invalidates the steps that run it, which
    Prefect's TASK_SOURCE policy alone would not notice. Kept per process while
    no file it read (nor a package folder, where a prompt file may appear) has
    changed: reading the closure's sources costs a good part of a second.
    """
    key = (module_names, prefixes)
    cached = _VERSIONS.get(key)
    if cached is not None and all(_stamp(Path(p)) == st for p, st in cached[0]):
        return cached[1]
    digest = hashlib.sha256()
    read: list[Path] = []
    for name in module_closure(tuple(module_names), prefixes):
        origin, is_pkg, _ = _imports_of(name)  # type: ignore[misc]
        path = Path(origin)
        digest.update(name.encode())
        digest.update(_file_digest(path))
        read.append(path)
        if is_pkg:  # a package: its data files (prompts) count too
            read.append(path.parent)
            for data in sorted(p for ext in ("*.yaml", "*.txt", "*.json") for p in path.parent.glob(ext)):
                digest.update(data.name.encode())
                digest.update(_file_digest(data))
                read.append(data)
    version = digest.hexdigest()[:16]
    _VERSIONS[key] = ([(str(p), _stamp(p)) for p in read], version)
    return version


def stable_hash(obj: Any) -> str:
    """sha256 of a JSON-serialisable object with sorted keys."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


class Strict(BaseModel):
    """Base of every recipe section: an unknown key is an error that lists the allowed ones."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


def runtime(default: Any = ..., **kw: Any) -> Any:
    """A config field that changes how work runs, never what it produces (retries, concurrency,
    timeouts): it stays out of cache keys, so raising a timeout keeps the finished work."""
    extra = {**kw.pop("json_schema_extra", {}), "runtime": True}
    return Field(default, json_schema_extra=extra, **kw)


def key_dump(model: BaseModel) -> dict[str, Any]:
    """The model as JSON data without its runtime fields, at every depth: what a cache key hashes."""
    out: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if extra.get("runtime"):
            continue
        out[name] = _key_value(getattr(model, name))
    return out


def _key_value(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return key_dump(value)
    if isinstance(value, (list, tuple)):
        return [_key_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _key_value(v) for k, v in value.items()}
    return to_jsonable_python(value)
