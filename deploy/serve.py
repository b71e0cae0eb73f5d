"""`infuse serve`: a trained model of a run behind an OpenAI-compatible HTTP server.

Two engines, both real OpenAI-compatible servers started as a subprocess:

- vLLM (`vllm serve`, the `gpu` extra) on a CUDA machine: the merged model, or
  a LoRA adapter on its base (`--enable-lora --lora-modules`). vLLM refuses
  DoRA adapters, adapters with `modules_to_save` and adapters with a bias, so
  those are caught here, before a long model load, with the advice to serve
  the merged model instead.
- `transformers serve` (transformers 5.x) on a CPU: the merged model only.

Either way the model is served with the chat template it was trained with:
the one saved beside it (chat_template.jinja, checked against card.json) is
passed to the engine explicitly, and so is the generation config whose
end-of-turn ids make a reply stop where training taught it to.

The model comes from the run's manifest like `infuse show` finds artifacts:
the newest committed `model` output of the step asked for (`sft.model`,
`dpo.model`, ...; by default the run's last) or of the merge step that merged it.
"""
from __future__ import annotations

import importlib.util
import json
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Engine = Literal["auto", "vllm", "transformers"]
# vLLM's accepted values of --max-lora-rank (vllm.config.lora.MaxLoRARanks)
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


class ServeError(ValueError):
    """A model that cannot be served as asked, with what to do instead."""


@dataclass
class Served:
    """A model artifact found in a run: where it is and what it is."""

    model: str  # the step that trained it (sft, dpo, ...)
    step: str  # the step whose output it is (sft, dpo, merge, ...)
    run_id: str
    path: Path  # the local directory
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def merged(self) -> bool:
        return self.card.get("layout") == "full"

    @property
    def name(self) -> str:
        """The model name clients send (`model` of a request)."""
        return f"infuse-{self.model}" + ("-merged" if self.step != self.model else "")


# ---- finding the model in a run ---------------------------------------------------------------------------------

def open_store(run: str | Path):
    """The artifact store of RUN: a recipe file (its `storage:`) or a storage root (runs/<name>)."""
    from infuse.storage import ArtifactStore

    path = Path(run)
    if path.is_file():
        from infuse.flows.recipe import load_recipe

        return ArtifactStore(load_recipe(path).storage)
    if path.is_dir() or "://" in str(run):
        store = ArtifactStore(str(run))
        if store.fs.exists(store.url("manifests")):
            return store
        raise ServeError(f"{run}: no manifests/ under it: not a storage root of an infuse run (runs/<name>)")
    raise ServeError(f"{run}: neither a recipe file nor a runs directory")


def find_model(store, model: str, merged: bool = False) -> Served:
    """The newest committed `<model>.model` of the runs under `store`, or (merged) the merge of it: the output
    of a merge step whose last model input is `<model>.model`."""
    from infuse.storage import ArtifactRef, RunManifest

    runs = RunManifest.all_runs(store)
    if not runs:
        raise ServeError("no run found under this storage root; run the recipe first")
    for doc in runs:
        for step, entry in doc.get("steps", {}).items():
            outputs = entry.get("outputs", {})
            if merged:
                hit, name = "merged" in outputs and _merged_from(entry) == f"{model}.model", "merged"
            else:
                hit, name = step == model and "model" in outputs, "model"
            if hit and RunManifest.committed_entry(store, doc, step):
                from infuse.operators.train.card import read_card

                ref = ArtifactRef.from_dict(outputs[name])
                path = store.local_dir(ref).resolve()
                return Served(model, step, doc["run_id"], path, read_card(path) or {})
    steps = sorted({s for d in runs for s in d.get("steps", {})})
    what = f"merge of `{model}.model`" if merged else f"`{model}.model`"
    hint = f"turn {model} on (steps.{model}.enabled: true)" + (", and merge (steps.merge.enabled: true)"
                                                                if merged else "")
    raise ServeError(f"no committed {what} in the runs under this storage root (steps run: {', '.join(steps)}); "
                     f"{hint} and run the recipe")


def _merged_from(entry: dict[str, Any]) -> str | None:
    """The model a merge step merged: its last input (merge reads every model before it, newest last)."""
    return next(reversed(list(entry.get("inputs_from", {}).values())), None)


def last_model(store) -> str:
    """The step that trained the newest run's last model: its last step with a `model` output, or the model
    its last merge merged."""
    from infuse.storage import RunManifest

    for doc in RunManifest.all_runs(store):
        for step, entry in reversed(list(doc.get("steps", {}).items())):
            outputs = entry.get("outputs", {})
            if "model" in outputs:
                return step
            if "merged" in outputs and _merged_from(entry):
                return str(_merged_from(entry)).partition(".")[0]
    raise ServeError("no trained model in the runs under this storage root; turn a training step on (e.g. "
                     "steps.sft.enabled: true) and run the recipe")


# ---- what each engine accepts ---------------------------------------------------------------------------------

def adapter_config(path: Path) -> dict[str, Any]:
    cfg = Path(path) / "adapter_config.json"
    if not cfg.is_file():
        raise ServeError(f"{path}: no adapter_config.json: not a PEFT adapter")
    return json.loads(cfg.read_text(encoding="utf-8"))


def vllm_adapter_problems(cfg: dict[str, Any]) -> list[str]:
    """Why vLLM would refuse this adapter (the checks of its PEFT loader), in words."""
    problems = []
    if cfg.get("use_dora"):
        problems.append("it is a DoRA adapter (use_dora), which vLLM does not support")
    if cfg.get("modules_to_save"):
        problems.append(f"it trains whole modules beside the adapter (modules_to_save: "
                        f"{', '.join(cfg['modules_to_save'])}), which vLLM does not load")
    if (cfg.get("bias") or "none") != "none":
        problems.append(f"it trains biases (bias: {cfg['bias']}), which vLLM does not support")
    if int(cfg.get("r", 0)) > VLLM_LORA_RANKS[-1]:
        problems.append(f"its rank {cfg['r']} is above vLLM's largest --max-lora-rank {VLLM_LORA_RANKS[-1]}")
    return problems


def max_lora_rank(cfg: dict[str, Any]) -> int:
    """The smallest --max-lora-rank vLLM accepts that holds the adapter's rank (r, or any rank_pattern rank)."""
    rank = max([int(cfg.get("r", 8)), *[int(v) for v in (cfg.get("rank_pattern") or {}).values()]])
    return next(r for r in VLLM_LORA_RANKS if r >= rank)


def base_dir(served: Served) -> Path:
    """The base model an adapter is applied to: its card's base (hybrid: the updated base it carries)."""
    from infuse.operators.train.merge import MergeError, base_of

    try:
        base = base_of(served.path, served.card, None)
    except MergeError as e:
        raise ServeError(str(e)) from None
    if base is None:
        raise ServeError(f"{served.path} is a full model, not an adapter")
    return base


def template_file(model_dir: Path) -> Path:
    """The chat template saved with the model, checked against its card (a mismatch raises)."""
    from infuse.operators.train.card import check_template
    from infuse.operators.train.templates import TemplateError

    try:
        check_template(model_dir)
    except TemplateError as e:
        raise ServeError(str(e)) from None
    path = Path(model_dir) / "chat_template.jinja"
    if not path.is_file():
        raise ServeError(f"{model_dir}: no chat_template.jinja: not saved by infuse, or its tokenizer was re-saved "
                         f"without its template")
    return path


# ---- command lines ----------------------------------------------------------------------------------------------

def vllm_command(served: Served, host: str, port: int, vllm: str = "vllm") -> list[str]:
    """`vllm serve` for the model: the merged (or full) weights, or the adapter on its base."""
    common = ["--host", host, "--port", str(port), "--chat-template", str(template_file(served.path)),
              "--generation-config", str(served.path)]  # its end-of-turn ids stop the reply
    if served.merged:
        return [vllm, "serve", str(served.path), "--served-model-name", served.name, *common]
    cfg = adapter_config(served.path)
    problems = vllm_adapter_problems(cfg)
    if problems:
        raise ServeError(f"vLLM cannot serve the {served.model} adapter at {served.path}: " + "; ".join(problems)
                         + f". Serve the merged model instead: turn merge on (steps.merge.enabled: true), run the "
                           f"recipe, then `infuse serve ... --model {served.model} --merged`")
    base = base_dir(served)
    return [vllm, "serve", str(base), "--served-model-name", f"{served.name}-base", *common,
            "--enable-lora", "--lora-modules", f"{served.name}={served.path}",
            "--max-lora-rank", str(max_lora_rank(cfg))]


def transformers_command(served: Served, host: str, port: int, transformers: str = "transformers",
                         kv_cache_tokens: int = 8192) -> list[str]:
    """`transformers serve` for a merged (or full) model directory, the only kind it loads here.

    Continuous batching serves concurrent requests; its paged KV cache is sized explicitly
    (`kv_cache_tokens`), since left to itself on a CPU it takes most of the machine's free RAM.
    """
    if not served.merged:
        raise ServeError(f"transformers serve needs a merged model and {served.path} is a "
                         f"{served.card.get('layout', 'adapter')}: pass --merged (turn merge on in the recipe "
                         f"first), or serve the adapter with --engine vllm on a GPU")
    template_file(served.path)  # transformers serve applies the tokenizer's own template, i.e. this one
    block = 32
    return [transformers, "serve", "--host", host, "--port", str(port), str(served.path),  # the model, pinned
            "--continuous-batching", "--cb-block-size", str(block),
            "--cb-num-blocks", str(max(1, kv_cache_tokens // block)),
            "--cb-max-batch-tokens", str(min(2048, kv_cache_tokens))]


def executable(name: str) -> str:
    """A console script of this environment (beside its python, venv not activated), else the one on PATH."""
    import sys

    here = Path(sys.executable).parent / name
    return str(here) if here.is_file() else (shutil.which(name) or name)


def has_gpu() -> bool:
    """A CUDA GPU is here (asked of nvidia-smi: the CLI process never initialises CUDA itself)."""
    if not shutil.which("nvidia-smi"):
        return False
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def pick_engine(engine: Engine) -> str:
    if engine != "auto":
        if engine == "vllm" and importlib.util.find_spec("vllm") is None:
            raise ServeError("vllm is not installed: pip install -e '.[gpu]' on a CUDA machine, or --engine "
                             "transformers")
        return engine
    return "vllm" if has_gpu() and importlib.util.find_spec("vllm") is not None else "transformers"


@dataclass
class Plan:
    """What `infuse serve` runs and how a client reaches it."""

    served: Served
    engine: str
    command: list[str]
    base_url: str
    model_name: str  # the `model` of a request

    def curl(self, question: str = "Hello! Who are you?") -> str:
        body = json.dumps({"model": self.model_name, "messages": [{"role": "user", "content": question}],
                           "max_tokens": 200}, ensure_ascii=False)
        return (f"curl {self.base_url}/chat/completions -H 'Content-Type: application/json' "
                f"-d {shlex.quote(body)}")


def plan(run: str | Path, model: str | None = None, merged: bool = False, engine: Engine = "auto",
         host: str = "127.0.0.1", port: int = 8000) -> Plan:
    """Find the model and build the engine's command line (nothing starts). No `model`: the newest run's last
    trained one (last_model: dpo's when dpo ran after sft)."""
    engine = pick_engine(engine)
    store = open_store(run)
    if model is None:
        model = last_model(store)
    if engine == "transformers" and not merged:  # it loads whole models only: the merge of the model asked
        try:                                       # for, or the model itself when it is whole (method full)
            served = find_model(store, model, merged=True)
        except ServeError:
            served = find_model(store, model)
            if not served.merged:
                raise
    else:
        served = find_model(store, model, merged)
    if engine == "vllm":
        cmd = vllm_command(served, host, port, executable("vllm"))
        name = served.name
    else:
        cmd = transformers_command(served, host, port, executable("transformers"))
        name = str(served.path)  # the pinned model: a request names it, or no model at all
    return Plan(served, engine, cmd, f"http://{host}:{port}/v1", name)


def serve(p: Plan) -> int:
    """Run the server in the foreground until it exits; Ctrl-C or SIGTERM stops it too. Returns its exit code."""
    import signal

    proc = subprocess.Popen(p.command)
    previous = signal.signal(signal.SIGTERM, lambda *_: proc.terminate())  # never leave the server orphaned
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
