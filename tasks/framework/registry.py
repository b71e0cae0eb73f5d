"""The registry of steps, their order in the pipeline, and plug-ins.

A step registers itself by being defined (Step.__init_subclass__ calls
`register`). Its name is its identity: two different classes may not take the
same name, but a module imported again (a reload, the same plug-in path) replaces
its own step.

Order: a step with a `stage` keeps its place by that number (no two steps of a
pipeline share one). A step without one (a plug-in, usually) goes right after
the last step that makes any of its inputs; one that reads nothing any step
makes goes first.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infuse.operators.common.base import stable_hash

if TYPE_CHECKING:
    from infuse.tasks.framework.step import Step


class StepContractError(RuntimeError):
    """A step broke its own declaration (an undeclared or missing output, a taken name or stage): a bug, not
    bad data."""


REGISTRY: dict[str, type["Step"]] = {}
PLUGINS: dict[str, str] = {}  # plugin spec (as a recipe names it, resolved) -> its module's name


def _where(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register(cls: type["Step"]) -> None:
    """Add a step class under its name; a different class that already has the name is an error."""
    old = REGISTRY.get(cls.name)
    if old is not None and _where(old) != _where(cls):
        raise StepContractError(f"step name {cls.name!r} is taken twice: by {_where(old)} and by {_where(cls)}; "
                                f"rename one of them")
    REGISTRY[cls.name] = cls


def get_step(name: str) -> type["Step"]:
    if name not in REGISTRY:
        raise KeyError(f"unknown step {name!r}; steps are: {', '.join(c.name for c in ordered_steps())}")
    return REGISTRY[name]


# ---- order ----------------------------------------------------------------------------------------------------

def ordered_steps(plugins: Iterable[str] | None = None) -> list[type["Step"]]:
    """The pipeline's steps in order, plus those of the given plugins (a plugin's steps belong only to
    the recipes that name it, even after another recipe loaded it into this process)."""
    wanted = {PLUGINS.get(_plugin_id(p)) for p in plugins or ()}
    plugin_modules = set(PLUGINS.values())
    steps = [c for c in REGISTRY.values() if c.__module__ not in plugin_modules or c.__module__ in wanted]
    _check_stages(steps)
    keys = _order_keys(steps)
    return sorted(steps, key=lambda c: keys[c.name])


def _check_stages(steps: list[type["Step"]]) -> None:
    seen: dict[float, type["Step"]] = {}
    for cls in sorted(steps, key=lambda c: c.name):
        if cls.stage is None:
            continue
        other = seen.setdefault(cls.stage, cls)
        if other is not cls:
            raise StepContractError(f"steps {other.name} ({_where(other)}) and {cls.name} ({_where(cls)}) both have "
                                    f"stage {cls.stage:g}: give one another stage, or none (a step without one goes "
                                    f"right after the step that makes its input)")


OrderKey = tuple[Any, ...]  # (stage,) for a staged step; its last producer's key + (name,) for one without


def _order_keys(steps: list[type["Step"]]) -> dict[str, OrderKey]:
    """Sort keys that put each step without a stage right after the last step that makes one of its inputs
    (recursively, when that one has no stage either); reading nothing that any step makes: first."""
    keys: dict[str, OrderKey] = {c.name: (float(c.stage),) for c in steps if c.stage is not None}

    def key(cls: type["Step"], visiting: tuple[str, ...]) -> OrderKey:
        if cls.name in keys:
            return keys[cls.name]
        if cls.name in visiting:
            raise StepContractError(f"steps {', '.join(visiting)} have no stage and read each other's outputs: "
                                    f"give one of them a stage")
        producers = [p for p in steps if p is not cls and _feeds(p, cls)]
        after = max((key(p, (*visiting, cls.name)) for p in producers), default=(float("-inf"),))
        keys[cls.name] = (*after, cls.name)
        return keys[cls.name]

    for cls in sorted(steps, key=lambda c: c.name):
        key(cls, ())
    return keys


def _feeds(producer: type["Step"], reader: type["Step"]) -> bool:
    """Whether `producer` makes an artifact that `reader` declares as an input."""
    for spec in reader.input_specs():
        if spec.kind is not None:
            found = any(o.kind == spec.kind for o in producer.outputs.values())
        else:
            found = spec.artifact in producer.outputs and spec.producer in (None, producer.name)
        if found:
            return True
    return False


# ---- plug-ins ---------------------------------------------------------------------------------------------------

def _plugin_id(spec: str) -> str:
    return str(Path(spec).resolve()) if spec.endswith(".py") else spec


def load_plugin(spec: str) -> None:
    """Import a module that defines steps: a dotted module name or a path to a .py file."""
    name = _load_file(spec) if spec.endswith(".py") else importlib.import_module(spec).__name__
    PLUGINS[_plugin_id(spec)] = name


def _load_file(spec: str) -> str:
    """Import a .py file once per process, under a name made from its resolved path."""
    path = Path(spec).resolve()
    name = f"infuse_plugin_{path.stem}_{stable_hash(str(path))[:8]}"
    if name in sys.modules:
        return name
    mod_spec = importlib.util.spec_from_file_location(name, path)
    if mod_spec is None or mod_spec.loader is None:
        raise ImportError(f"plugin {spec}: not a Python file")
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[name] = module
    try:
        mod_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return name
