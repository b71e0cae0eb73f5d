"""Screenshots of the Prefect UI for the README, taken with headless Chromium (`make screenshots`).

Run after `make demo`, with its server up: the newest `infuse` flow run's page (the run graph), and the
newest artifact of each key below (a step's summary with its plots, a counts table, the eval report) are
saved as PNGs under docs/img/. A key no run has published yet (evaluate before that step exists) is
skipped with a note. Chromium: Debian's `chromium` package (or CHROMIUM=/path/to/chrome).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

# file name -> (artifact key, window height): what the README shows
ARTIFACTS = {
    "artifacts.png": ("filter-summary", 2200),       # thresholds and a histogram per statistic
    "filter-counts.png": ("filter-counts", 900),     # rows in / kept / rejected by reason
    "sft-summary.png": ("sft-summary", 1000),        # the loss curve and the run's numbers
    "evaluate-summary.png": ("evaluate-summary", 1800),  # the eval report, once evaluate exists
}
WIDTH = 1400
# what a headless Chromium needs on a machine with no network and no display (WebGL in software for the graph)
FLAGS = ["--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--force-device-scale-factor=1"]


def api(base: str, path: str, body: dict) -> list[dict]:
    req = urllib.request.Request(f"{base}{path}", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def shoot(chromium: str, url: str, out: Path, height: int, wait_ms: int) -> None:
    with tempfile.TemporaryDirectory(prefix="infuse-chromium-") as profile:
        cmd = [chromium, *FLAGS, f"--user-data-dir={profile}", f"--window-size={WIDTH},{height}",
               f"--virtual-time-budget={wait_ms}", f"--screenshot={out}", url]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if done.returncode != 0 or not out.is_file():
        raise RuntimeError(f"chromium failed on {url}:\n{done.stderr[-2000:]}")


def main() -> int:
    port = os.environ.get("INFUSE_PREFECT_PORT", "4200")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ui", default=f"http://127.0.0.1:{port}", help="the Prefect server (UI and API)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "img")
    p.add_argument("--wait-ms", type=int, default=15000, help="page time before the shot (virtual time)")
    args = p.parse_args()
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("no chromium found: apt-get install chromium (or set CHROMIUM)", file=sys.stderr)
        return 2
    base = f"{args.ui}/api"
    settings = json.load(urllib.request.urlopen(f"{args.ui}/ui-settings", timeout=10))
    if settings.get("api_url", base).rstrip("/") != base:  # the UI would call another server and show an error
        print(f"the UI at {args.ui} calls {settings['api_url']}: restart it with `infuse server stop` and "
              f"`infuse server start` (INFUSE_PREFECT_PORT={port})", file=sys.stderr)
        return 2
    runs = api(base, "/flow_runs/filter", {"flows": {"name": {"any_": ["infuse"]}}, "sort": "START_TIME_DESC",
                                           "limit": 10})
    finished = [r for r in runs if r.get("state_type") == "COMPLETED"] or runs
    if not finished:
        print("no infuse flow run on this server: run `make demo` first", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    run = finished[0]
    shoot(chromium, f"{args.ui}/runs/flow-run/{run['id']}", args.out / "flow-run.png", 540, args.wait_ms)  # the graph
    print(f"flow-run.png          run {run['name']} ({run.get('state_name')})")
    for name, (key, height) in ARTIFACTS.items():
        found = api(base, "/artifacts/filter", {"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC",
                                                "limit": 1})
        if not found:
            print(f"{name:22s} skipped: no artifact {key!r} yet")
            continue
        shoot(chromium, f"{args.ui}/artifacts/artifact/{found[0]['id']}", args.out / name, height, args.wait_ms)
        print(f"{name:22s} artifact {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
