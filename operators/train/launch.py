"""Start training in a subprocess through `accelerate launch`, and follow it.

The flow process never imports CUDA: it writes the job as JSON, starts
`accelerate launch ... -m infuse.operators.train.worker job.json` in its own
process group, and reads the worker's output line by line. Lines that start
with EVENT_PREFIX are JSON events (start, log, checkpoint, done) for the
progress bar and the report; every other line is handed to `on_log` (the
Prefect task log). A stop request or an error in a callback ends the whole
process group; if the flow process itself dies, the kernel signals the
launcher (PR_SET_PDEATHSIG), which takes its workers down with it.

One process on CPU or one GPU; `num_processes` > 1 is torchrun under
accelerate (gloo on CPU, NCCL on GPUs); fsdp2/zero2/zero3 use the configs in
deploy/accelerate/.
"""
from __future__ import annotations

import importlib.util
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infuse.operators.common.base import STOP, Interrupted
from infuse.operators.train.config import Job, LaunchOptions
from infuse.operators.train.devices import gpu_count, installed

EVENT_PREFIX = "@@infuse-event "
WORKER = "infuse.operators.train.worker"


class TrainingFailed(RuntimeError):
    """The training subprocess exited with an error; the message ends with its last output lines."""


def deploy_dir() -> Path:
    """deploy/accelerate/ (found without importing infuse.deploy, which loads Prefect)."""
    spec = importlib.util.find_spec("infuse.deploy")
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0]) / "accelerate"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def world_size(opts: LaunchOptions) -> int:
    """Processes in all: as asked, else one per GPU of this machine (times machines), else 1."""
    if opts.num_processes:
        return opts.num_processes
    return max(gpu_count(), 1) * opts.num_machines


def preflight(opts: LaunchOptions) -> list[str]:
    """What would make the launch fail on this machine, said before anything starts (infuse validate)."""
    problems = []
    gpus = gpu_count()
    if opts.strategy in ("zero2", "zero3") and not installed("deepspeed"):
        problems.append(f"launch.strategy {opts.strategy} needs DeepSpeed: pip install deepspeed")
    if opts.strategy != "ddp" and not gpus:
        problems.append(f"launch.strategy {opts.strategy} shards the model over GPUs and this machine has none; "
                        f"use ddp on CPU")
    per_machine = world_size(opts) // opts.num_machines
    if gpus and per_machine > gpus:
        problems.append(f"launch.num_processes: {per_machine} processes per machine but {gpus} GPU(s) here")
    if world_size(opts) % opts.num_machines:
        problems.append("launch.num_processes must be a multiple of launch.num_machines")
    if opts.num_machines > 1 and not (opts.main_process_ip and opts.main_process_port):
        problems.append("launch: a multi-node run needs main_process_ip and main_process_port (rank 0's)")
    if opts.config_file and not Path(opts.config_file).is_file():
        problems.append(f"launch.config_file {opts.config_file!r} does not exist")
    return problems


def command(module_args: list[str], opts: LaunchOptions) -> tuple[list[str], dict[str, str]]:
    """The `accelerate launch` command line and environment for `python -m <module_args>`."""
    n = world_size(opts)
    gpus = gpu_count()
    config = opts.config_file or str(deploy_dir() / f"{opts.strategy}.yaml")
    port = opts.main_process_port or free_port()
    cmd = [sys.executable, "-c", _TRAMPOLINE, "-m", "accelerate.commands.launch", "--config_file", config,
           "--num_processes", str(n), "--num_machines", str(opts.num_machines),
           "--machine_rank", str(opts.machine_rank), "--main_process_port", str(port),
           "--mixed_precision", "no", "--dynamo_backend", "no"]  # precision: the Trainer's own bf16 flag
    if opts.main_process_ip:
        cmd += ["--main_process_ip", opts.main_process_ip]
    if n > 1 and opts.strategy == "ddp" and not opts.config_file:
        cmd += ["--multi_gpu"]  # torchrun; on CPU the worker asks for gloo (use_cpu)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "ACCELERATE_DISABLE_RICH": "1", **opts.env}
    # a fixed string hash: peft writes the target modules it resolved (all-linear: a set) into adapter_config.json
    # in set order, which otherwise changes from process to process, and so would the model's bytes
    env.setdefault("PYTHONHASHSEED", "0")
    if not gpus:
        threads = opts.cpu_threads or max((os.cpu_count() or 1) // max(n // opts.num_machines, 1), 1)
        env.setdefault("OMP_NUM_THREADS", str(threads))
        env["CUDA_VISIBLE_DEVICES"] = ""
        cmd += ["--num_cpu_threads_per_process", env["OMP_NUM_THREADS"]]
    cmd += ["-m", *module_args]
    return cmd, env


def set_parent_death_signal() -> None:
    """Ask the kernel for SIGTERM when our parent dies (Linux; elsewhere a no-op)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


# Sets the parent-death signal, then becomes `python <args>`: no preexec_fn in a threaded flow process.
_TRAMPOLINE = ("import ctypes, os, signal, sys\n"
               "try:\n    ctypes.CDLL('libc.so.6').prctl(1, signal.SIGTERM)\nexcept Exception:\n    pass\n"
               "os.execv(sys.executable, [sys.executable] + sys.argv[1:])")


def _kill_group(proc: subprocess.Popen, grace_s: float) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def launch(module_args: list[str], opts: LaunchOptions, work_dir: Path, on_log: Callable[[str], None],
           on_event: Callable[[dict[str, Any]], None] | None = None, tail_lines: int = 60) -> None:
    """Run `python -m <module_args>` under accelerate launch; raise TrainingFailed on a non-zero exit,
    Interrupted on a stop request. Output goes to on_log / on_event as it comes."""
    cmd, env = command(module_args, opts)
    work_dir.mkdir(parents=True, exist_ok=True)
    on_log(f"launch: {' '.join(cmd[4:])}")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                            env=env, cwd=str(work_dir), start_new_session=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    tail: deque[str] = deque(maxlen=tail_lines)
    try:
        while True:
            if STOP.is_set():
                _kill_group(proc, grace_s=30)
                raise Interrupted("training stopped on request; a re-run resumes from the last checkpoint")
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                break
            if line.startswith(EVENT_PREFIX):
                if on_event is not None:
                    on_event(json.loads(line[len(EVENT_PREFIX):]))
                continue
            tail.append(line)
            on_log(line)
        proc.wait()
    finally:
        _kill_group(proc, grace_s=10)
        reader.join(timeout=5)
    if proc.returncode != 0:
        raise TrainingFailed(f"training exited with code {proc.returncode}; last output:\n" + "\n".join(tail))


def run_job(job: Job, opts: LaunchOptions, on_log: Callable[[str], None],
            on_event: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Write job.json into the job's output dir, run the worker on it, return its result.json.

    A job that already finished there (same job.json, result.json written, e.g. the flow died before it
    committed the model) is not run again."""
    out = Path(job.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    path, result_path = out / "job.json", out / "result.json"
    text = job.model_dump_json(indent=1)
    if result_path.is_file() and path.is_file() and path.read_text(encoding="utf-8") == text \
            and (out / "final" / "card.json").is_file():
        on_log(f"training already finished in {out}; using its result")
        return json.loads(result_path.read_text(encoding="utf-8"))
    result_path.unlink(missing_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    t0 = time.monotonic()
    launch([WORKER, str(path)], opts, out, on_log, on_event)
    if not result_path.is_file():
        raise TrainingFailed(f"the worker exited cleanly but wrote no {result_path}")
    result = json.loads(result_path.read_text(encoding="utf-8"))
    result["launch_wall_s"] = round(time.monotonic() - t0, 2)
    return result
