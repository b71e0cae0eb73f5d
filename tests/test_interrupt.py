"""`infuse run` as a user sees it: SIGTERM mid-training ends the run Interrupted, and the terminal is quiet.

A real CLI in a subprocess, reporting to the tests' Prefect server. SIGTERM
while sft trains in its `accelerate launch` subprocess must end the run as
Interrupted everywhere (exit 130 and its message, no traceback; the manifest;
the flow run and the sft task run Cancelled/Interrupted in Prefect, not
Failed or Crashed), take the training processes down, and leave a run that a
re-run resumes. The terminal of a run shows infuse's lines, not the
libraries' warnings and progress bars, which go to the run's log file.
"""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from cli_helpers import infuse, manifests, spawn, training_processes, wait_for, write_recipe

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]

TRAIN_STEPS = str(Path(__file__).with_name("train_steps.py"))
INTERRUPTED = "interrupted: finished work is committed; run again to resume"
DATA_OFF = ("parse", "chunk", "clean", "filter", "dedup", "synthesize", "qa_filter")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from tiny_models import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "base")


def _prefect_states(run_id: str) -> tuple[object, dict[str, object]]:
    """The flow run's state and its task runs' states by name, as the API has them."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        flow_state = client.read_flow_run(run_id).state
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    return flow_state, {t.name: t.state for t in tasks}


def test_sigterm_mid_sft_ends_interrupted_stops_training_and_a_rerun_resumes(tmp_path, tiny):
    from tiny_models import fact_rows

    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join(json.dumps(r) for r in fact_rows(2)), encoding="utf-8")
    (tmp_path / "docs").mkdir()
    root = tmp_path / "runs"
    recipe = write_recipe(tmp_path / "r.yaml", tmp_path / "docs", root, plugins=[TRAIN_STEPS],
                          model={"path": str(tiny)},
                          steps={**{s: {"enabled": False} for s in DATA_OFF}, "rows": {"path": str(rows)},
                                 "sft": {"enabled": True, "method": "lora", "max_steps": 60, "save_steps": 5,
                                         "batch_size": 1, "max_length": 64, "learning_rate": 1e-2,
                                         "lr_scheduler": "constant", "warmup_ratio": 0.0,
                                         "lora": {"r": 8, "alpha": 16, "dropout": 0.0}}})
    proc = spawn(["run", str(recipe)], cwd=tmp_path, PREFECT_LOGGING_LEVEL="INFO")
    sft_dir = root / "artifacts" / "sft"
    wait_for(lambda: any(sft_dir.glob("*/_work/checkpoints/checkpoint-*/trainer_state.json")), 600,
             "sft's first complete checkpoint", proc)
    assert training_processes(root), "the training processes run when the checkpoint appears"

    t0 = time.time()
    os.killpg(proc.pid, signal.SIGTERM)  # the CLI's process group, as a shell or a supervisor sends it
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 130, f"rc {proc.returncode} (-15: killed by the signal):\n{out[-4000:]}"
    assert time.time() - t0 < 120, "stopped within the stop grace, not at the end of training"
    assert INTERRUPTED in out, out[-4000:]
    assert "Traceback" not in out and "Crashed" not in out and "Failed" not in out, out[-4000:]
    wait_for(lambda: not training_processes(root), 60, "the training processes to end (no orphans)")

    doc = manifests(root)[-1]
    assert doc["status"] == "interrupted", doc["status"]
    assert doc["steps"]["rows"]["state"] == "Completed" and doc["steps"]["sft"]["state"] == "Interrupted"
    flow_state, task_states = _prefect_states(doc["run_id"])
    assert (flow_state.type.value, flow_state.name) == ("CANCELLED", "Interrupted"), flow_state
    sft_state = task_states["sft"]
    assert (sft_state.type.value, sft_state.name) == ("CANCELLED", "Interrupted"), sft_state
    assert task_states["rows"].type.value == "COMPLETED"
    assert not list((root / "_prefect").glob("infuse-sft-*")), "an interrupted step leaves no cache record"
    log = (root / "logs" / f"{doc['run_id']}.log").read_text(encoding="utf-8")
    assert "stopping (SIGTERM)" in log and "sft: checkpoint at step 5" in log

    (work,) = sft_dir.glob("*/_work")
    saved = sorted(int(p.parent.name.split("-")[1]) for p in work.glob("checkpoints/checkpoint-*/trainer_state.json"))
    assert saved and saved[-1] < 60 and not (work / "final").exists()
    again = infuse(["run", str(recipe)], cwd=tmp_path, timeout=900)
    assert again.returncode == 0, again.stdout + again.stderr
    doc = manifests(root)[-1]
    assert doc["status"] == "completed"
    assert doc["steps"]["rows"]["state"] == "Cached" and doc["steps"]["sft"]["state"] == "Completed"
    assert doc["steps"]["sft"]["stats"]["resumed_from"] >= saved[-1], "resumed from the checkpoint, not step 0"
    flow_state, task_states = _prefect_states(doc["run_id"])
    assert flow_state.type.value == "COMPLETED" and task_states["sft"].type.value == "COMPLETED"


# A step that does what libraries do in a run: warn (FutureWarning, UserWarning) and load a model (transformers'
# "Loading weights" bar); a gpu step, so it asks for the `infuse-gpu` limit.
NOISY_PLUGIN = '''
import warnings

from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, table


class NoisyOptions(StepOptions):
    model: str = ""


class Noisy(Step):
    name = "noisy"
    stage = 25
    gpu = True
    description = "warn and load a model, as libraries do"
    inputs = ("chunks",)
    outputs = {"loaded": table()}
    Options = NoisyOptions

    def run(self, ctx: StepContext) -> StepOutput:
        from transformers import AutoModelForCausalLM

        warnings.warn("noisy: a library's FutureWarning", FutureWarning)
        warnings.warn("noisy: a library's UserWarning", UserWarning)
        model = AutoModelForCausalLM.from_pretrained(ctx.options.model)
        n = sum(p.numel() for p in model.parameters())
        ctx.log.info(f"noisy: loaded a model of {n} parameters")
        return StepOutput({"loaded": ctx.write_table("loaded", [{"params": n}])},
                          report=StepReport(rows_in=1, kept=1))
'''


def test_the_terminal_shows_infuse_lines_and_the_log_file_has_everything(tmp_path, examples_copy, tiny):
    plugin = tmp_path / "noisy_steps.py"
    plugin.write_text(NOISY_PLUGIN, encoding="utf-8")
    off = {s: {"enabled": False} for s in DATA_OFF if s not in ("parse", "chunk")}
    recipe = write_recipe(tmp_path / "r.yaml", examples_copy, tmp_path / "runs", plugins=[str(plugin)],
                          steps={**off, "mix": {"enabled": False}, "noisy": {"model": str(tiny)}})
    done = infuse(["run", str(recipe)], cwd=tmp_path, timeout=900, PREFECT_LOGGING_LEVEL="INFO")
    terminal = done.stdout + done.stderr
    assert done.returncode == 0, terminal
    assert "parse: Completed" in terminal and "noisy: loaded a model" in terminal, "infuse's lines are shown"
    for noise in ("Concurrency limits", "Loading weights", "FutureWarning", "UserWarning"):
        assert noise not in terminal, f"{noise!r} on the terminal:\n{terminal[-4000:]}"

    run_id = manifests(tmp_path / "runs")[-1]["run_id"]
    log_file = tmp_path / "runs" / "logs" / f"{run_id}.log"
    assert f"log: {log_file.relative_to(tmp_path)}" in terminal, "the terminal says where the log is"
    log = log_file.read_text(encoding="utf-8")
    for line in ("parse: Completed", "chunk: Completed", "noisy: loaded a model", "Finished in state Completed"):
        assert line in log, f"{line!r} not in the log file"
    assert "FutureWarning: noisy: a library's FutureWarning" in log and "UserWarning: noisy: a library's UserWarning" \
        in log, "the warnings are kept, in the log file"
