"""The `infuse` command line: run, steps, show, validate, plan and server."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PREFECT_HOME", str(Path(".prefect").resolve()))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from infuse.flows import server as prefect_server  # noqa: E402
from infuse.flows.recipe import RecipeError, load_recipe  # noqa: E402

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="infuse: turn a folder of documents into fine-tuning data, step by cached step.")
server_app = typer.Typer(no_args_is_help=True, help="The local Prefect server (UI at http://127.0.0.1:4200).")
app.add_typer(server_app, name="server")


def _use_local_server() -> None:
    """Point Prefect at the local server when it runs, so runs show up in its UI."""
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per API call otherwise
    if "PREFECT_API_URL" not in os.environ and prefect_server.healthy():
        os.environ["PREFECT_API_URL"] = prefect_server.API_URL


def _load(recipe: Path):
    try:
        r = load_recipe(recipe)
    except RecipeError as e:
        typer.secho(str(e), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    if not Path(r.input).is_dir():
        typer.secho(f"{recipe}: input: folder {r.input!r} does not exist or is not a folder", fg=typer.colors.RED,
                    err=True)
        raise typer.Exit(2)
    return r


def _check_steps(*names: str | None) -> None:
    from infuse.flows.steps import step_names

    for n in names:
        if n is not None and n not in step_names():
            typer.secho(f"unknown step {n!r}; steps are: {', '.join(step_names())}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2)


@app.command()
def validate(recipe: Path) -> None:
    """Check a recipe; print every problem with the field it is in."""
    r = _load(recipe)
    typer.secho(f"{recipe}: ok", fg=typer.colors.GREEN)
    typer.echo(f"input: {r.input}\nstorage: {r.storage}")
    for name in r.steps.model_fields:
        opts = r.step_options(name)
        typer.echo(f"  {name:12s} {'on' if opts.enabled else 'off'}")


@app.command()
def run(
    recipe: Path,
    from_: Optional[str] = typer.Option(None, "--from", help="start at this step; earlier ones come from the last run"),
    only: Optional[str] = typer.Option(None, "--only", help="run only this step, on the last run's inputs"),
    refresh: list[str] = typer.Option([], "--refresh", help="recompute this step and every step after it"),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="re-run only the synthesis items that failed"),
) -> None:
    """Run the pipeline of a recipe."""
    r = _load(recipe)
    _check_steps(from_, only, *refresh)
    _use_local_server()
    from infuse.flows.pipeline import run_recipe
    from infuse.storage import ArtifactStore

    results = run_recipe(str(recipe), from_step=from_, only=only, refresh=refresh or None,
                         retry_failed=retry_failed)
    store = ArtifactStore(r.storage)

    def where(path: str) -> str:  # relative to here when the artifact is under here
        shown = store.display(path)
        return os.path.relpath(shown) if shown.startswith(os.getcwd() + os.sep) else shown

    typer.echo("")
    for step, res in results.items():
        for name, ref in res["outputs"].items():
            typer.echo(f"{step:10s} {name:10s} {ref['rows']:7d} rows  {where(ref['path'])}")
        typer.echo(f"{'':10s} {'rejects':10s} {res['rejects']['rows']:7d} rows  {where(res['rejects']['path'])}")
    if os.environ.get("PREFECT_API_URL", "").startswith(prefect_server.UI_URL):
        typer.echo(f"\nPrefect UI: {prefect_server.UI_URL}/runs")


@app.command()
def plan(recipe: Path) -> None:
    """Print the synthesis requests and token estimate before any LLM call is made.

    Parses and chunks first if needed (cached steps come back at once); makes no LLM call.
    """
    r = _load(recipe)
    _use_local_server()
    from infuse.flows.pipeline import run_recipe, step_config
    from infuse.storage import ArtifactRef, ArtifactStore
    from infuse.tasks.synthesize import estimate, format_estimate, plan_items, synth_config

    results = run_recipe(str(recipe), only=None, refresh=None, stop_before="synthesize")
    store = ArtifactStore(r.storage)
    last_chunks = [res["outputs"]["chunks"] for res in results.values() if "chunks" in res["outputs"]][-1]
    chunks = store.read(ArtifactRef.from_dict(last_chunks))
    docs = store.read(ArtifactRef.from_dict(results["parse"]["outputs"]["documents"]))
    cfg = step_config(r, "synthesize")
    items, skipped = plan_items(cfg, chunks, docs)
    typer.echo(f"\nsynthesis plan for {recipe}: {len(items)} work items over {chunks.num_rows} chunks "
               f"and {docs.num_rows} documents; LLM: {r.steps.synthesize.llm.backend} "
               f"{r.steps.synthesize.llm.model or '(packaged Gemma 3 270M)'}")
    typer.echo(format_estimate(estimate(items, synth_config(cfg), chunks=chunks)))
    if skipped:
        reasons: dict[str, int] = {}
        for s in skipped:
            reasons[s["reason"]] = reasons.get(s["reason"], 0) + 1
        typer.echo(f"not synthesized: {reasons}")


@app.command()
def steps() -> None:
    """List the pipeline's steps in order, with what each reads and writes."""
    from infuse.flows.steps import STEPS

    for module, _ in STEPS:
        s = module.SPEC
        tag = " [gpu]" if s.gpu else ""
        typer.echo(f"{s.name:12s}{tag} {', '.join(s.inputs) or 'input folder'} -> {', '.join(s.outputs)}")
        typer.echo(f"{'':12s} {s.description}")


@app.command()
def show(
    target: str = typer.Argument(..., help="a step name, an artifact name (documents, chunks, ...) or a .parquet path"),
    recipe: Path = typer.Option(Path("recipes/demo.yaml"), "--recipe", "-r", help="recipe whose storage to look in"),
    rows: int = typer.Option(5, "--rows", "-n", help="rows of head to print"),
) -> None:
    """Show an artifact: schema, row count, head, and the step's rejects with reasons."""
    import pandas as pd
    import pyarrow.parquet as pq

    from infuse.storage import ArtifactRef, ArtifactStore, RunManifest

    pd.set_option("display.max_colwidth", 60)
    pd.set_option("display.width", 200)
    if target.endswith(".parquet"):
        table = pq.read_table(target)
        typer.echo(f"{target}\nrows: {table.num_rows}")
        typer.echo("\n".join(f"  {f.name}: {f.type}" for f in table.schema))
        typer.echo(table.slice(0, rows).to_pandas().to_string())
        return
    store = ArtifactStore(_load(recipe).storage)
    manifest = RunManifest.load_latest(store)
    if not manifest:
        typer.secho("no run found under this storage root; run the recipe first", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    entry = manifest["steps"].get(target)
    if entry is None:  # an artifact name: the last step that produced it
        hits = [(s, e) for s, e in manifest["steps"].items() if target in e.get("outputs", {})]
        if not hits:
            typer.secho(f"{target!r} is neither a step nor an artifact of run {manifest['run_id']}; steps: "
                        f"{', '.join(manifest['steps'])}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1)
        step, entry = hits[-1]
        outputs = {target: entry["outputs"][target]}
    else:
        step, outputs = target, entry.get("outputs", {})
    typer.echo(f"run {manifest['run_id']}  step {step}  state {entry.get('state')}")
    for name, ref in outputs.items():
        ref = ArtifactRef.from_dict(ref)
        typer.secho(f"\n== {name}: {ref.rows} rows  sha256 {ref.sha256[:16]}  {store.display(ref.path)}", bold=True)
        table = store.read(ref)
        typer.echo("\n".join(f"  {f.name}: {f.type}" for f in table.schema))
        typer.echo(table.slice(0, rows).to_pandas().to_string())
    if entry.get("rejects"):
        rej = store.read(ArtifactRef.from_dict(entry["rejects"])).to_pandas()
        typer.secho(f"\n== rejects: {len(rej)} rows", bold=True)
        if len(rej):
            typer.echo(rej["reason"].value_counts().to_string())
            typer.echo(rej[["id", "reason", "message"]].head(max(rows, 20)).to_string())
    stats = {k: v for k, v in entry.get("stats", {}).items() if not k.startswith("_")}
    typer.echo("\nstats: " + json.dumps(stats, ensure_ascii=False))


@server_app.command("start")
def server_start() -> None:
    """Start the local Prefect server in the background (SQLite under .prefect/)."""
    url = prefect_server.start()
    typer.echo(f"Prefect server up: UI {prefect_server.UI_URL}  API {url}")


@server_app.command("stop")
def server_stop() -> None:
    """Stop the local Prefect server started by `infuse server start`."""
    typer.echo("stopped" if prefect_server.stop() else "no server started by infuse is running")


@server_app.command("status")
def server_status() -> None:
    """Say whether the local Prefect server answers."""
    ok = prefect_server.healthy()
    typer.echo(f"{prefect_server.UI_URL}: {'up' if ok else 'down'}")
    raise typer.Exit(0 if ok else 1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
