"""Scheduled infuse runs: a Prefect deployment of the pipeline with a cron schedule.

    # 1. a real Prefect server (schedules need one):  infuse server start
    # 2. serve the deployment; runs fire on schedule and show up in the UI:
    python -m infuse.deploy.schedule recipes/demo.yaml --cron "0 2 * * *"
    # or trigger one now from another shell:
    prefect deployment run 'infuse/demo'

`flow.serve` keeps a light process polling for scheduled runs; for GPU steps
in a work pool, see deploy/work_pools.md.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path


def build_deployment(recipe: str, cron: str | None, name: str | None = None):
    """A deployment of the infuse flow for one recipe (paths made absolute so any worker finds them)."""
    from infuse.flows.pipeline import pipeline_for
    from infuse.flows.recipe import load_recipe

    r = load_recipe(recipe)
    return pipeline_for(r).to_deployment(  # on the recipe's task runner (Dask / Ray) too
        name=name or r.name,
        parameters={"recipe_path": str(Path(recipe).resolve())},
        cron=cron,
        tags=["infuse", r.name],
        description=f"infuse pipeline for {recipe}",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recipe")
    ap.add_argument("--cron", default="0 2 * * *", help="cron schedule (default: nightly at 02:00)")
    ap.add_argument("--name", default=None)
    args = ap.parse_args()
    os.environ.setdefault("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    from prefect import serve

    serve(build_deployment(args.recipe, args.cron, args.name))


if __name__ == "__main__":
    main()
