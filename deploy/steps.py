"""Prefect deployment steps of infuse's prefect.yaml: where a worker runs the flow.

A recipe's relative paths (input, storage, plugins) are relative to the
directory infuse runs from, so a deployed run must start in the project
directory. `project_dir` (a build step) records the directory `infuse deploy`
ran in; `enter_project` (the pull step every run starts with) changes into it,
or into $INFUSE_PROJECT_DIR when the worker's machine keeps the project
elsewhere (a GPU box with its own checkout of the same recipes).
"""
from __future__ import annotations

import os
from pathlib import Path


def project_dir() -> dict[str, str]:
    """Build step: the project directory, as `infuse deploy` sees it."""
    return {"directory": str(Path.cwd())}


def enter_project(directory: str) -> dict[str, str]:
    """Pull step: change into the project directory before the flow loads its recipe."""
    target = os.environ.get("INFUSE_PROJECT_DIR") or directory
    if not Path(target).is_dir():
        raise FileNotFoundError(f"project directory {target!r} does not exist on this worker's machine; set "
                                f"INFUSE_PROJECT_DIR to where the recipes are here")
    os.chdir(target)
    return {"directory": target}
