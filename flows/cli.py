"""The `infuse` command line: run, steps, show, compare, validate, plan, deploy, serve and server."""
from __future__ import annotations

import json
import logging
import os
import signal
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PREFECT_HOME", str(Path(".prefect").resolve()))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")  # nor the client's telemetry: nothing leaves the machine but registry traffic

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


# `infuse run`'s terminal: infuse's lines and errors. The libraries' warnings and progress bars go to the run's
# log file only (<storage>/logs/<flow run id>.log), which has every line; the Prefect UI has the steps' lines.
QUIET_ENV = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}  # also the subprocesses'


class _TerminalFilter(logging.Filter):
    """Passes to the terminal the run's own lines (the flow's and steps' log lines, progress, Prefect's states)
    and every error; not the libraries' warnings and notices (`py.warnings`, pypdf, ...), the warnings and
    library notices the training subprocess prints (`[RANK 0] ...`, `[transformers] ...`), nor lines marked for
    the log only (progress lines while a bar shows)."""

    def __init__(self) -> None:
        import re

        super().__init__()
        self._warning = re.compile(r"^\S.*:\d+: \w*Warning: ")  # `file.py:12: UserWarning: ...`
        self._notice = re.compile(r"^\[[^\]]+\] ")  # a library logger's line; the worker's own say `sft: ...`
        self._in_warning = False

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "infuse_terminal", True) is False:
            return False
        if record.levelno >= logging.ERROR:
            return True
        if not record.name.startswith(("prefect", "infuse")):
            return False
        if record.pathname.endswith(os.path.join("train", "launch.py")):  # a line of the training subprocess
            msg = record.getMessage()
            if self._warning.match(msg):
                self._in_warning = True
                return False
            if self._in_warning and msg[:1].isspace():  # the warning's source line
                return False
            self._in_warning = False
            return not self._notice.match(msg)
        return True


class _RunLog(logging.Handler):
    """Every log record of the run, libraries' warnings included, into <storage>/logs/<flow run id>.log
    (held until the first record that names the flow run; an object store gets the file at the end)."""

    def __init__(self, storage: str) -> None:
        from prefect.logging.formatters import PrefectFormatter

        super().__init__()
        self.setFormatter(PrefectFormatter(
            "%(asctime)s | %(levelname)-7s | %(name)s - %(message)s",
            flow_run_fmt="%(asctime)s | %(levelname)-7s | Flow run %(flow_run_name)r - %(message)s",
            task_run_fmt="%(asctime)s | %(levelname)-7s | Task run %(task_run_name)r - %(message)s"))
        self.storage = storage
        self.held: list[str] = []
        self.stream = None
        self.local: Path | None = None
        self.remote: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            if self.stream is None:
                run_id = getattr(record, "flow_run_id", None)
                if run_id is None:
                    if len(self.held) < 10_000:
                        self.held.append(line)
                    return
                self._open(str(run_id))
            self.stream.write(line + "\n")
            self.stream.flush()
        except Exception:
            self.handleError(record)

    def _open(self, name: str) -> None:
        import tempfile

        from infuse.storage import ArtifactStore

        store = ArtifactStore(self.storage)
        if store.is_local:
            self.local = Path(store.url("logs", f"{name}.log"))
        else:
            self.local = Path(tempfile.mkdtemp(prefix="infuse-log-")) / f"{name}.log"
            self.remote = store.url("logs", f"{name}.log")
            self.fs = store.fs
        self.local.parent.mkdir(parents=True, exist_ok=True)
        self.stream = open(self.local, "a", encoding="utf-8")
        self.stream.write("".join(line + "\n" for line in self.held))
        self.held.clear()

    def finish(self) -> str | None:
        """Close the file; returns where it is (None: nothing was logged)."""
        import time

        if self.stream is None and self.held:  # stopped before the flow run started
            self._open(time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}")
        if self.stream is None:
            return None
        self.stream.close()
        if self.remote is None:
            shown = str(self.local)
            return os.path.relpath(shown) if shown.startswith(os.getcwd() + os.sep) else shown
        try:
            self.fs.put(str(self.local), self.remote)
        except Exception as e:
            typer.secho(f"could not copy the log to {self.remote}: {e}", fg=typer.colors.YELLOW, err=True)
            return str(self.local)
        return self.remote


@contextmanager
def _quiet_terminal(storage: str):
    """For `infuse run` only: the terminal shows infuse's lines, the run's log file has every line."""
    from prefect.logging.handlers import PrefectConsoleHandler

    env = {k: os.environ.get(k) for k in QUIET_ENV}
    os.environ.update(QUIET_ENV)
    bars = _progress_bars_off()
    root = logging.getLogger()
    consoles = [h for h in root.handlers if isinstance(h, PrefectConsoleHandler)]
    terminal, log = _TerminalFilter(), _RunLog(storage)
    for h in consoles:
        h.addFilter(terminal)
    root.addHandler(log)
    logging.captureWarnings(True)  # warnings become records of `py.warnings`: the file has them, not the terminal
    try:
        yield log
    finally:
        logging.captureWarnings(False)
        root.removeHandler(log)
        for h in consoles:
            h.removeFilter(terminal)
        for enable in bars:
            enable()
        _restore_env(env)
        with log.lock:
            path = log.finish()
        log.close()
        if path:
            typer.secho(f"log: {path}", dim=True, err=True)


def _progress_bars_off() -> list:
    """Turn off the progress bars of the libraries already imported, which read QUIET_ENV no more;
    returns the calls that turn them back on."""
    import sys

    bars = []
    if "huggingface_hub" in sys.modules:
        import huggingface_hub.utils as hub

        if not hub.are_progress_bars_disabled():
            hub.disable_progress_bars()
            bars.append(hub.enable_progress_bars)
    if "transformers" in sys.modules:
        import transformers

        if transformers.utils.logging.is_progress_bar_enabled():
            transformers.utils.logging.disable_progress_bar()
            bars.append(transformers.utils.logging.enable_progress_bar)
    return bars


def _restore_env(env: dict[str, str | None]) -> None:
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _sigterm_is_ctrl_c(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops a run as Ctrl-C does: interrupted, exit 130, not killed


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


def _graph(recipe_path: Path, r, skipped: dict[str, str] | None = None):
    from infuse.flows.graph import GraphError, build_graph, check_files

    try:
        nodes = build_graph(r, skipped)
        check_files(r, nodes)
        return nodes
    except GraphError as e:
        typer.secho(f"{recipe_path}: {len(e.problems)} problem(s)\n" + "\n".join(f"  - {p}" for p in e.problems),
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


def _check_steps(nodes, *names: str | None) -> None:
    known = [n.name for n in nodes]
    for n in names:
        if n is not None and n not in known:
            typer.secho(f"unknown or disabled step {n!r}; steps of this recipe are: {', '.join(known)}",
                        fg=typer.colors.RED, err=True)
            raise typer.Exit(2)


@app.command()
def validate(recipe: Path) -> None:
    """Check a recipe: every problem with the field it is in, and how its steps are wired."""
    r = _load(recipe)
    skipped: dict[str, str] = {}
    nodes = _graph(recipe, r, skipped)
    typer.secho(f"{recipe}: ok", fg=typer.colors.GREEN)
    typer.echo(f"input: {r.input}\nstorage: {r.storage}\nmodel: {r.model.path or '(packaged Gemma 3 270M)'}")
    from infuse.tasks.framework.step import ordered_steps

    wired = {n.name: n for n in nodes}
    for cls in ordered_steps(r.plugins):
        node = wired.get(cls.name)
        reads = ", ".join(f"{name} <- {p}" for name, (p, _) in node.inputs.items()) if node else ""
        if cls.name in skipped:
            reads = f"(skipped: {skipped[cls.name]})"
        typer.echo(f"  {cls.name:12s} {'on ' if node else 'off'} {reads}")


@app.command()
def run(
    recipe: Path,
    from_: Optional[str] = typer.Option(None, "--from", help="start at this step; earlier ones come from the last run"),
    only: Optional[str] = typer.Option(None, "--only", help="run only this step, on the last run's inputs"),
    refresh: list[str] = typer.Option([], "--refresh", help="recompute this step and every step it feeds"),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="re-run only the items that failed (synthesis)"),
) -> None:
    """Run the pipeline of a recipe."""
    previous = signal.signal(signal.SIGTERM, _sigterm_is_ctrl_c)  # (the flow run puts Prefect's own in its place)
    try:
        _run(recipe, from_, only, refresh, retry_failed)
    except KeyboardInterrupt:  # SIGTERM or Ctrl-C: the flow run ends Interrupted (RunInterrupted), or never began
        typer.secho("\ninterrupted: finished work is committed; run again to resume", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(recipe: Path, from_: str | None, only: str | None, refresh: list[str], retry_failed: bool) -> None:
    r = _load(recipe)
    _check_steps(_graph(recipe, r), from_, only, *refresh)
    _use_local_server()
    from infuse.flows.pipeline import ClusterLost, RunInterrupted, StepFailed, run_recipe

    with _quiet_terminal(r.storage):
        try:
            results = run_recipe(str(recipe), from_step=from_, only=only, refresh=refresh or None,
                                 retry_failed=retry_failed)
        except (StepFailed, ClusterLost) as e:
            typer.secho(f"\ninfuse run failed: {e}\n(fix the cause and run again: finished steps come back Cached)",
                        fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None
        except RunInterrupted:
            raise KeyboardInterrupt from None
        _print_results(r, results)


def _print_results(r, results: dict) -> None:
    from infuse.storage import ArtifactStore

    store = ArtifactStore(r.storage)

    def where(path: str) -> str:  # relative to here when the artifact is under here
        shown = store.display(path)
        return os.path.relpath(shown) if shown.startswith(os.getcwd() + os.sep) else shown

    def size(ref: dict) -> str:
        return f"{ref['rows']:7d} rows " if ref.get("kind", "table") == "table" else f"{ref['rows']:7d} files"

    typer.echo("")
    for step, res in results.items():
        for name, ref in res["outputs"].items():
            typer.echo(f"{step:10s} {name:10s} {size(ref)} {where(ref['path'])}")
        typer.echo(f"{'':10s} {'rejects':10s} {size(res['rejects'])} {where(res['rejects']['path'])}")
    if "evaluate" in results:
        from infuse.operators.evaluate.report import headline_text, table_text

        stats = results["evaluate"]["stats"]
        typer.echo("\nevaluate: strict accuracy (every number, date and code of the short answer, no rival value), "
                   "mean [95% CI]\n" + table_text(stats.get("table", [])))
        typer.echo("\n" + "\n".join(line.replace("**", "") for line in headline_text(stats.get("headline") or {})))
    if os.environ.get("PREFECT_API_URL", "").startswith(prefect_server.UI_URL):
        typer.echo(f"\nPrefect UI: {prefect_server.UI_URL}/runs")


@app.command()
def plan(recipe: Path) -> None:
    """Say what the costly steps would do (synthesis: requests and tokens) before any LLM call.

    Runs the steps they need first (cached steps come back at once); makes no LLM call.
    """
    r = _load(recipe)
    _graph(recipe, r)
    _use_local_server()
    from infuse.flows.pipeline import run_recipe

    results = run_recipe(str(recipe), plan_only=True)
    for step, text in results.get("_estimates", {}).items():
        typer.echo(f"\n{step}: {text}")


@app.command()
def steps(
    recipe: Optional[Path] = typer.Option(None, "--recipe", "-r", help="include this recipe's plugin steps"),
) -> None:
    """List the pipeline's steps in order, with what each reads and writes."""
    from infuse.tasks.framework.step import ordered_steps

    plugins = _load(recipe).plugins if recipe else []
    for cls in ordered_steps(plugins):
        tag = " [gpu]" if cls.gpu else ""
        reads = ", ".join(f"{i.name}{'?' if i.optional else ''}" for i in cls.input_specs()) or "input folder"
        writes = ", ".join(f"{n} ({o.kind})" if o.kind != "table" else n for n, o in cls.outputs.items())
        typer.echo(f"{cls.name:12s}{tag} {reads} -> {writes}")
        typer.echo(f"{'':12s} {cls.description}")


def _head(table, rows: int, full: bool) -> str:
    from infuse.flows.tableview import render

    return render(table.slice(0, rows).to_pylist(), table.column_names, full=full)


def _show_ref(store, ref, rows: int, full: bool = False) -> None:
    from infuse.storage import ArtifactRef

    ref = ArtifactRef.from_dict(ref) if isinstance(ref, dict) else ref
    what = f"{ref.rows} rows" if ref.kind == "table" else f"{ref.kind}, {ref.rows} files"
    typer.secho(f"\n== {ref.name}: {what}  sha256 {ref.sha256[:16]}  {store.display(ref.path)}", bold=True)
    if ref.kind == "table":
        table = store.read(ref)
        typer.echo("\n".join(f"  {f.name}: {f.type}" for f in table.schema))
        typer.echo(_head(table, rows, full))
        return
    meta = store.read_meta(ref.step, ref.key, ref.name) or {}
    typer.echo(f"  {ref.schema}")
    for rel, info in sorted(meta.get("files", {}).items()):
        typer.echo(f"  {rel:40s} {info['size']:>12,d} bytes")
    if ref.kind == "report":
        md = store.local_dir(ref) / "report.md"
        if md.exists():
            typer.echo("\n" + md.read_text(encoding="utf-8"))


@app.command()
def show(
    target: str = typer.Argument(..., help="a step name, an artifact name (documents, chunks, ...) or a .parquet path"),
    recipe: Path = typer.Option(Path("recipes/demo.yaml"), "--recipe", "-r", help="recipe whose storage to look in"),
    rows: int = typer.Option(5, "--rows", "-n", help="rows of head to print"),
    full: bool = typer.Option(False, "--full", help="print every value whole (default: cut to the terminal width)"),
) -> None:
    """Show an artifact (table, model or report): schema, row count, head, and the step's rejects with reasons."""
    from infuse.storage import ArtifactStore, RunManifest

    if target.endswith(".parquet"):
        _show_parquet(target, rows, full)
        return
    store = ArtifactStore(_load(recipe).storage)
    runs = RunManifest.all_runs(store)
    if not runs:
        typer.secho("no run found under this storage root; run the recipe first", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    doc, step, entry, name = _find_output(store, runs, target)
    typer.echo(f"run {doc['run_id']} ({doc.get('status')})  step {step}  state {entry.get('state')}")
    outputs = {name: entry["outputs"][name]} if name else entry.get("outputs", {})
    for ref in outputs.values():
        _show_ref(store, ref, rows, full)
    if entry.get("rejects"):
        _show_rejects(store, entry["rejects"], rows, full)
    stats = {k: v for k, v in entry.get("stats", {}).items() if not k.startswith("_")}
    typer.echo("\nstats: " + json.dumps(stats, ensure_ascii=False))


def _show_parquet(path: str, rows: int, full: bool) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    typer.echo(f"{path}\nrows: {table.num_rows}")
    typer.echo("\n".join(f"  {f.name}: {f.type}" for f in table.schema))
    typer.echo(_head(table, rows, full))


def _find_output(store, runs: list[dict], target: str) -> tuple[dict, str, dict, str | None]:
    """The newest committed output of step `target`, else of the last step that writes an artifact named
    `target`: (run manifest, step, its entry, the artifact's name or None for all the step's outputs)."""
    from infuse.storage import RunManifest

    found = RunManifest.find_step(store, target)
    if found is not None:
        return found[0], target, found[1], None
    for doc in runs:
        for step, entry in reversed(list(doc.get("steps", {}).items())):
            if target in entry.get("outputs", {}) and RunManifest.committed_entry(store, doc, step):
                return doc, step, entry, target
    known = sorted({s for d in runs for s in d.get("steps", {})})
    typer.secho(f"{target!r}: no committed output of a step or artifact of that name; steps run: "
                f"{', '.join(known)}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _show_rejects(store, ref: dict, rows: int, full: bool) -> None:
    from infuse.storage import ArtifactRef

    rej = store.read(ArtifactRef.from_dict(ref))
    typer.secho(f"\n== rejects: {rej.num_rows} rows", bold=True)
    if rej.num_rows:
        typer.echo(rej.column("reason").to_pandas().value_counts().to_string())
        typer.echo(_head(rej.select(["id", "reason", "message"]), max(rows, 20), full))


def _eval_entry(run: Path) -> tuple[str, list[dict]]:
    """A run's evaluate table: from a manifest file, a storage root (its newest committed evaluate) or a recipe."""
    from infuse.storage import ArtifactStore, RunManifest

    if run.suffix == ".json" and run.is_file():
        doc = json.loads(run.read_text(encoding="utf-8"))
        entry = doc.get("steps", {}).get("evaluate")
        if not entry or "stats" not in entry:
            raise typer.BadParameter(f"{run}: this run has no evaluate step")
        return doc["run_id"], entry["stats"].get("table", [])
    root = _load(run).storage if run.suffix in (".yaml", ".yml") else str(run)
    if not run.exists() and "://" not in root:
        raise typer.BadParameter(f"{run}: no such runs dir, manifest or recipe")
    found = RunManifest.find_step(ArtifactStore(root), "evaluate")
    if found is None:
        raise typer.BadParameter(f"{run}: no run under it has a committed evaluate step")
    doc, entry = found
    return doc["run_id"], entry["stats"].get("table", [])


@app.command()
def compare(
    run_a: Path = typer.Argument(..., help="a runs dir (its newest evaluated run), a manifest .json or a recipe"),
    run_b: Path = typer.Argument(..., help="the same for the other run"),
    metric: list[str] = typer.Option(["contains", "f1"], "--metric", "-m",
                                     help="contains | f1 | rouge_l | judge | loss (repeatable)"),
) -> None:
    """Two runs' evaluation tables side by side, with B - A per model, question group and metric."""
    from infuse.operators.evaluate.report import compare_text

    try:
        (id_a, a), (id_b, b) = _eval_entry(run_a), _eval_entry(run_b)
    except typer.BadParameter as e:
        typer.secho(str(e), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    typer.echo(f"A: {run_a} (run {id_a})\nB: {run_b} (run {id_b})\n")
    typer.echo(compare_text(a, b, ("A", "B"), tuple(metric)))


@app.command()
def deploy(
    recipe: Path,
    cron: str = typer.Option("0 2 * * *", "--cron", help="when the nightly incremental run starts"),
    timezone: str = typer.Option("UTC", "--timezone", help="the cron's time zone, e.g. Europe/Berlin"),
    pool: str = typer.Option("infuse", "--pool", help="work pool of the runs: infuse (CPU) or infuse-gpu"),
    gpu_slots: int = typer.Option(1, "--gpu-slots", min=1, help="GPU steps that may run at once, over all runs"),
    from_: Optional[str] = typer.Option(None, "--from", help="runs start at this step; earlier ones come from the "
                                                             "newest run under the same storage root"),
) -> None:
    """Deploy a recipe to the Prefect server: a nightly incremental run and an on-demand full run.

    Run it from your project directory (where the recipe's relative paths start): workers run the
    flow there. Creates the work pools `infuse` and `infuse-gpu` and the `gpu` tag limit first.
    """
    _check_steps(_graph(recipe, _load(recipe)), from_)
    _use_local_server()
    api = os.environ.get("PREFECT_API_URL", "")
    if not api or not prefect_server.healthy(api):
        typer.secho(f"no Prefect server answers at {api or prefect_server.API_URL}: start one with "
                    f"`infuse server start` or set PREFECT_API_URL", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    from infuse.deploy.deployments import deploy as apply

    try:
        done = apply(recipe, cron=cron, timezone=timezone, pool=pool, gpu_slots=gpu_slots, from_step=from_)
    except RuntimeError as e:
        typer.secho(str(e), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    nightly, full = done.names
    typer.echo(f"deployed {recipe} (runs open {done.recipe_path} from {Path.cwd()}):\n"
               f"  {nightly:30s} cron '{cron}' ({timezone})\n  {full:30s} on demand, every step recomputes\n"
               f"work pool: {done.pool}; GPU steps at once: {gpu_slots}\n\n"
               f"start a worker:  prefect worker start --pool {done.pool}\n"
               f"run one now:     prefect deployment run '{full}'")


@app.command()
def serve(
    run: str = typer.Argument(..., help="a recipe file (its storage) or a storage root such as runs/demo"),
    model: Optional[str] = typer.Option(None, "--model", help="the step whose trained model to serve: sft, dpo, "
                                                               "... (default: the newest run's last model)"),
    merged: bool = typer.Option(False, "--merged", help="serve merge's output of that model, not the adapter"),
    port: int = typer.Option(8000, "--port", help="port of the OpenAI-compatible server"),
    host: str = typer.Option("127.0.0.1", "--host", help="address it listens on (0.0.0.0: every interface)"),
    engine: str = typer.Option("auto", "--engine", help="auto (vllm on a GPU, else transformers), vllm or "
                                                        "transformers"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the server's command line and exit"),
) -> None:
    """Serve a run's trained model behind an OpenAI-compatible API (vLLM on a GPU, transformers serve on CPU)."""
    from infuse.deploy import serve as S

    if engine not in ("auto", "vllm", "transformers"):
        typer.secho(f"--engine {engine!r}: one of auto, vllm, transformers", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    try:
        p = S.plan(run, model=model, merged=merged, engine=engine, host=host, port=port)  # type: ignore[arg-type]
    except (S.ServeError, RecipeError) as e:
        typer.secho(str(e), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    what = "merged model" if p.served.merged else "adapter"
    typer.echo(f"serving {p.served.model} {what} {p.served.path}\n  (step {p.served.step} of run {p.served.run_id}, "
               f"chat template {p.served.card.get('template', {}).get('name', '?')}) with {p.engine}\n"
               f"  $ {' '.join(p.command)}\n\n"
               f"base URL: {p.base_url}   model: {p.model_name}\n"
               f"try:\n  {p.curl()}\n", err=False)
    if dry_run:
        return
    raise typer.Exit(S.serve(p))


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
