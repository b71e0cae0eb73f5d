"""The selection methods, one class per file, and the registry `select_rows` looks a method up in.

Adding a method: a file here with a `Method` subclass (see `base.py`), its class
in `CLASSES` below, and its name in `config.Method` (the recipe schema).
"""
from __future__ import annotations

from infuse.operators.select.methods.base import Candidates, Method, Scorers
from infuse.operators.select.methods.deita import Deita
from infuse.operators.select.methods.diverse import Diverse
from infuse.operators.select.methods.ifd_cut import IFDCut
from infuse.operators.select.methods.longest import Longest
from infuse.operators.select.methods.mods import Mods
from infuse.operators.select.methods.random_draw import RandomDraw

CLASSES: tuple[type[Method], ...] = (IFDCut, Mods, Diverse, Longest, Deita, RandomDraw)
REGISTRY: dict[str, Method] = {name: cls() for cls in CLASSES for name in cls.names}


def method(name: str) -> Method:
    """The method registered under `name`."""
    if name not in REGISTRY:
        raise ValueError(f"unknown select method {name!r}")
    return REGISTRY[name]


__all__ = ["CLASSES", "REGISTRY", "Candidates", "Method", "Scorers", "method"]
