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
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
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


# Set by the flow when the run is stopped (SIGTERM, Ctrl-C: the pipeline's stop handling); long loops in operators
# check it between units of work.
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


@dataclass(frozen=True)
class ModuleSource:
    """One module's .py file, read once per process while it is unchanged: what it imports, and whether it
    declares itself outside the cache key (`PRESENTATION = True` at its top level: it only formats, plots or
    reports; or `VALIDATION = True`: it only checks recipe files before a run, or resolves and fingerprints
    them, and the files' contents are in the key themselves)."""

    name: str
    path: Path
    is_pkg: bool
    stamp: tuple[int, int]
    imports: tuple[tuple[str, str | None], ...]  # `import mod`: (mod, None); `from pkg import name`: (pkg, name)
    presentation: bool

    def imported(self, prefixes: tuple[str, ...]) -> list[str]:
        """The modules under `prefixes` it imports: `from pkg import sub` imports the submodule pkg.sub, and
        `from pkg import name` (no submodule) or `import pkg` the package itself."""
        out = []
        for base, attr in self.imports:
            name = base
            if attr not in (None, "*") and _under(f"{base}.{attr}", prefixes) and _is_submodule(base, attr):
                name = f"{base}.{attr}"
            if _under(name, prefixes):
                out.append(name)
        return out


_SOURCES: dict[str, ModuleSource] = {}


def module_source(name: str) -> ModuleSource | None:
    """The module's source facts, or None when it has no .py source (a namespace, a C extension)."""
    cached = _SOURCES.get(name)
    if cached is not None and _stamp(cached.path) == cached.stamp:
        return cached
    origin = _origin(name)
    if origin is None:
        return None
    path, is_pkg = origin
    stamp = _stamp(path)
    src = _SOURCE_FACTS.get(name, path, is_pkg, stamp)
    if src is None:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        src = ModuleSource(name, path, is_pkg, stamp, tuple(_imported(tree, name, is_pkg)),
                           _declares_presentation(tree))
        _SOURCE_FACTS.put(src)
    _SOURCES[name] = src
    return src


class _SourceFacts:
    """ModuleSource facts kept on disk between processes, by file, size and mtime: a cached re-run checks every
    step's code version, and parsing the ~500 modules of its closures anew cost most of a second per run.
    `$INFUSE_CACHE/code/modules.json` (default ~/.cache/infuse); unreadable or absent: parsed again."""

    def __init__(self) -> None:
        self.facts: dict[str, list[Any]] | None = None
        self.dirty = False

    def path(self) -> Path:
        from infuse.operators.common.models import cache_home  # models reads nothing of this module

        return cache_home() / "code" / "modules.json"

    def get(self, name: str, path: Path, is_pkg: bool, stamp: tuple[int, int]) -> ModuleSource | None:
        if self.facts is None:
            try:
                self.facts = json.loads(self.path().read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self.facts = {}
        got = self.facts.get(f"{name} {path}")
        if not isinstance(got, list) or len(got) != 4 or got[:2] != list(stamp):
            return None
        return ModuleSource(name, path, is_pkg, stamp, tuple((b, a) for b, a in got[2]), bool(got[3]))

    def put(self, src: ModuleSource) -> None:
        if self.facts is None:
            self.facts = {}
        self.facts[f"{src.name} {src.path}"] = [*src.stamp, [list(i) for i in src.imports], src.presentation]
        self.dirty = True

    def save(self) -> None:
        """Write the facts when new ones were parsed (a temp file, then rename: another process may read)."""
        if not self.dirty or self.facts is None:
            return
        target = self.path()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.facts), encoding="utf-8")
            os.replace(tmp, target)
            self.dirty = False
        except OSError:
            pass  # a read-only home: the facts are parsed again next time


_SOURCE_FACTS = _SourceFacts()


def _origin(name: str) -> tuple[Path, bool] | None:
    """The module's source file and whether it is a package, found on disk: `find_spec` of a dotted name
    imports its parent packages, and a stage package's __init__ may pull in torch (seconds per cached step)."""
    parts = name.split(".")
    if len(parts) > 2 and parts[0] == "infuse":
        for folder in _package_dirs(".".join(parts[:2])):
            base = folder.joinpath(*parts[2:])
            if (base / "__init__.py").is_file():
                return base / "__init__.py", True
            if base.with_suffix(".py").is_file():
                return base.with_suffix(".py"), False
        return None
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin), bool(spec.submodule_search_locations)


_DIRS: dict[str, list[Path]] = {}


def _package_dirs(pkg: str) -> list[Path]:
    """Where a top package's modules live (infuse.operators -> the repo's operators/): its own __init__ only
    is imported, and those are one docstring each."""
    if pkg not in _DIRS:
        try:
            spec = importlib.util.find_spec(pkg)
        except (ImportError, ValueError):
            spec = None
        _DIRS[pkg] = [Path(d) for d in (spec.submodule_search_locations or [])] if spec is not None else []
    return _DIRS[pkg]


def _imported(tree: ast.Module, name: str, is_pkg: bool) -> Iterator[tuple[str, str | None]]:
    """What the import statements of `tree` (the source of module `name`) name, as ModuleSource.imports."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((a.name, None) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, name, is_pkg)
            yield from ((base, a.name) for a in node.names)


def _absolute(node: ast.ImportFrom, name: str, is_pkg: bool) -> str:
    """The absolute module a `from ... import` reads from (a relative one resolved against this module)."""
    if not node.level:
        return node.module or ""
    pkg = name if is_pkg else name.rpartition(".")[0]
    for _ in range(node.level - 1):
        pkg = pkg.rpartition(".")[0]
    return f"{pkg}.{node.module}" if node.module else pkg


def _is_submodule(pkg: str, attr: str) -> bool:
    origin = _origin(pkg)
    if origin is None or not origin[1]:
        return False
    folder = origin[0].parent
    return (folder / f"{attr}.py").is_file() or (folder / attr / "__init__.py").is_file()


def _declares_presentation(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and node.value.value is True:
            if any(isinstance(t, ast.Name) and t.id in ("PRESENTATION", "VALIDATION") for t in node.targets):
                return True
    return False


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def module_closure(roots: tuple[str, ...], prefixes: tuple[str, ...] = ("infuse.operators",)) -> list[str]:
    """The modules whose source counts for code that starts at `roots`.

    Every module under `prefixes` that the roots import, directly or through each
    other, read from the source (ast), so nothing is imported twice and a helper
    that a step reaches only indirectly still counts. A module that declares
    itself presentation is left out with what only it imports. The packages
    above each of them count by their own __init__ only: a package's re-exports
    count when a module imports the package itself (`from pkg import name`
    where name is no submodule, `import pkg`).
    """
    followed: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        src = None if name in followed else module_source(name)
        if src is None or src.presentation:
            continue
        followed.add(name)
        stack += src.imported(prefixes)
    parents = {".".join(n.split(".")[:i]) for n in followed for i in range(1, n.count(".") + 1)}
    shallow = {p for p in parents - followed if (s := module_source(p)) is not None and not s.presentation}
    _SOURCE_FACTS.save()
    return sorted(followed | shallow)


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


DATA_FILES = ("*.yaml", "*.txt", "*.json")  # beside a package's __init__: prompts and tables its code reads


def code_version(*module_names: str, prefixes: tuple[str, ...] = ("infuse.operators",)) -> str:
    """sha256 over the source of module_closure(module_names, prefixes), and each package's data files.

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
        src = module_source(name)
        assert src is not None  # module_closure lists only modules with a source
        read += _digest_module(digest, src)
    version = digest.hexdigest()[:16]
    _VERSIONS[key] = ([(str(p), _stamp(p)) for p in read], version)
    return version


def _digest_module(digest: Any, src: ModuleSource) -> list[Path]:
    """Add a module (and a package's data files) to the digest; returns the paths it read."""
    digest.update(src.name.encode())
    digest.update(_file_digest(src.path))
    if not src.is_pkg:
        return [src.path]
    data = sorted(p for ext in DATA_FILES for p in src.path.parent.glob(ext))
    for path in data:
        digest.update(path.name.encode())
        digest.update(_file_digest(path))
    return [src.path, src.path.parent, *data]


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
