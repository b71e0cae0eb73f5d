"""Packaging: one top-level import name, `infuse`, over the repo's fixed layout.

flows/, tasks/, operators/, storage/ and deploy/ sit at the repo root but are
imported as infuse.flows, infuse.tasks, ... Generic top-level names such as
`storage` were shadowed by any folder of that name on sys.path: a Dask worker
puts its scratch dir, which holds a `storage/` spill folder, on sys.path.
Every sub-package is found here, so a new folder needs no line in pyproject.
"""
from setuptools import find_packages, setup

ROOTS = ("flows", "tasks", "operators", "storage", "deploy")

packages = []
for root in ROOTS:
    packages += [f"infuse.{root}"] + [f"infuse.{root}.{sub}" for sub in find_packages(root)]

setup(packages=packages, package_dir={f"infuse.{root}": root for root in ROOTS})
