"""Start, stop and find the local Prefect server that infuse runs report to.

The server keeps its SQLite database and logs under PREFECT_HOME (./.prefect by
default), runs in the background, and is found again through a pid file.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HOST, PORT = "127.0.0.1", int(os.environ.get("INFUSE_PREFECT_PORT", "4200"))
API_URL = f"http://{HOST}:{PORT}/api"
UI_URL = f"http://{HOST}:{PORT}"


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME", ".prefect")).resolve()


def _pid_file() -> Path:
    return prefect_home() / "server.pid"


def healthy(url: str = API_URL, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def start(wait_s: float = 90.0) -> str:
    """Start the server in the background unless one already answers; return its API URL."""
    if healthy():
        return API_URL
    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_ENABLED": "true", "PREFECT_UI_API_URL": API_URL}  # the UI calls this port, not 4200
    env.pop("PREFECT_API_URL", None)  # the server itself must not point at a server
    log = open(home / "server.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(PORT)],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    _pid_file().write_text(str(proc.pid))
    deadline = time.time() + wait_s
    while time.time() < deadline:
        if healthy():
            return API_URL
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {proc.returncode}; see {home / 'server.log'}")
        time.sleep(0.5)
    raise RuntimeError(f"prefect server did not answer within {wait_s:.0f}s; see {home / 'server.log'}")


def stop() -> bool:
    pid_file = _pid_file()
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text())
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        cmdline = b""
    if b"prefect" in cmdline:  # a stale pid file may name some other process by now
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    pid_file.unlink(missing_ok=True)
    return True
