"""Run the installed `infuse` CLI as users do: a subprocess, from a folder outside the repo,
reporting to the tests' Prefect server."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

INFUSE = str(Path(sys.executable).with_name("infuse"))


def cli_env(**extra: str) -> dict[str, str]:
    from prefect.settings import get_current_settings

    env = {**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url), "HF_HUB_OFFLINE": "1",
           "PYTHONUNBUFFERED": "1", **extra}
    env.pop("PYTHONPATH", None)  # nothing of the test process's path: the installed package only
    return env


def infuse(args: list[str], cwd: Path, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([INFUSE, *args], cwd=cwd, env=cli_env(**env), capture_output=True, text=True,
                          timeout=timeout)


def spawn(args: list[str], cwd: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen([INFUSE, *args], cwd=cwd, env=cli_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def wait_for(cond: Any, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended (rc {proc.returncode}) before {what}:\n{proc.stdout.read()[-3000:]}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def write_recipe(path: Path, docs: Path, storage: Path, **top: Any) -> Path:
    data = {"name": "cli-test", "input": str(docs), "storage": str(storage), **top}
    data.setdefault("steps", {})
    path.write_text(yaml.safe_dump(data))
    return path


def manifests(storage: Path) -> list[dict[str, Any]]:
    """Every run's manifest under a storage root, oldest first."""
    docs = [json.loads(p.read_text()) for p in (storage / "manifests").glob("*.json") if p.name != "latest.json"]
    return sorted(docs, key=lambda d: d["started_at"])


def last_states(storage: Path) -> dict[str, str]:
    return {s: e["state"] for s, e in manifests(storage)[-1]["steps"].items()}


def outputs_sha(storage: Path) -> dict[str, str]:
    """step.artifact -> sha256 of the newest run's outputs."""
    doc = manifests(storage)[-1]
    return {f"{s}.{n}": r["sha256"] for s, e in doc["steps"].items() for n, r in e.get("outputs", {}).items()}


def training_processes(root: Path) -> list[int]:
    """Pids of the accelerate launcher and the training worker whose job lies under `root`."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "infuse.operators.train.worker" in cmd and str(root) in cmd:
            pids.append(int(proc.name))
    return pids
