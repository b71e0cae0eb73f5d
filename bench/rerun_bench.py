#!/usr/bin/env python
"""Benchmark: a fully cached re-run of a recipe (every step Cached), against the CLI's own start-up (the baseline).

A scheduled run over a folder that did not change should cost seconds. This
runs `infuse run <recipe>` on a store where the recipe already ran (run it
once first, e.g. `make demo`), --repeat times, and `infuse steps` (the CLI's
import and start-up, no flow) as many times, in the same process tree, and
prints the medians. The target is a cached re-run of at most 5 s. The
Prefect server must be up (`make server`), as for `make demo`.

  .venv/bin/python bench/rerun_bench.py recipes/demo.yaml
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INFUSE = Path(sys.executable).with_name("infuse")


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-2000:]}{res.stderr[-2000:]}")
    return wall, res.stdout + res.stderr


def last_states(recipe: Path) -> dict[str, str]:
    """The step states of the newest run of `recipe` (its manifest under the recipe's storage)."""
    import yaml

    storage = Path(yaml.safe_load(recipe.read_text(encoding="utf-8"))["storage"])
    storage = storage if storage.is_absolute() else ROOT / storage
    doc = json.loads((storage / "manifests" / "latest.json").read_text(encoding="utf-8"))
    run = json.loads((storage / "manifests" / f"{doc['run_id']}.json").read_text(encoding="utf-8"))
    return {name: entry["state"] for name, entry in run["steps"].items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recipe", nargs="?", default="recipes/demo.yaml")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PREFECT_HOME": str(ROOT / ".prefect"),
           "PREFECT_API_URL": os.environ.get("PREFECT_API_URL", "http://127.0.0.1:4200/api")}
    runs, steps = [], []
    for _ in range(a.repeat):
        wall, _ = timed([str(INFUSE), "run", a.recipe], env)
        states = last_states(ROOT / a.recipe)
        ran = {n: s for n, s in states.items() if s != "Cached"}
        if ran:
            raise SystemExit(f"not a cached re-run: {ran} (run the recipe once first, e.g. `make demo`)")
        runs.append(wall)
        steps.append(timed([str(INFUSE), "steps"], env)[0])
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"cached re-run of {a.recipe} ({len(states)} steps, all Cached): median {statistics.median(runs):.2f} s "
          f"(runs {', '.join(f'{r:.2f}' for r in runs)}); target <= 5 s")
    print(f"baseline, `infuse steps` (CLI start-up, no flow): median {statistics.median(steps):.2f} s "
          f"(runs {', '.join(f'{r:.2f}' for r in steps)})")


if __name__ == "__main__":
    main()
