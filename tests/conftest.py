"""Shared fixtures. One real Prefect server for the whole session, with its home in a temp dir."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
_HOME = tempfile.mkdtemp(prefix="infuse-prefect-home-")
os.environ["PREFECT_HOME"] = _HOME
os.environ.pop("PREFECT_API_URL", None)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"

# Under xdist, each worker gets its share of the cores: torch's default (a thread per core it sees, in every
# worker and in every process a test starts) oversubscribes them. Two heavy tests side by side on 2 cores took
# 132 s with the default and 44 s with one thread each. A container may see more cores than it is given, so
# the share counts the cores this process may use (affinity, cgroup quota). Set before torch is imported;
# child processes inherit it.
def _usable_cores() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return cores


if os.environ.get("PYTEST_XDIST_WORKER"):
    _share = max(1, _usable_cores() // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, str(_share))

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="session")
def prefect_server():
    """A real local Prefect API (SQLite), started once; every flow in the session reports to it."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture
def examples_copy(tmp_path: Path) -> Path:
    """A private copy of examples/, so a test can add and remove files."""
    dst = tmp_path / "docs"
    shutil.copytree(EXAMPLES, dst)
    return dst
