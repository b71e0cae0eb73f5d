"""The built-in strategies and augmenters, one module each (see ../strategy.py).

Importing this package imports every module in it, and each registers what it
defines: a new strategy is one new file here. `MODULES` names them for the
synthesize step's code version, which reads imports from the source and so
would not see these.
"""
from __future__ import annotations

import importlib
import pkgutil

MODULES: tuple[str, ...] = tuple(f"{__name__}.{m.name}" for m in sorted(pkgutil.iter_modules(__path__),
                                                                      key=lambda m: m.name))

for _module in MODULES:
    importlib.import_module(_module)
