"""What accelerators this machine has, asked without initialising CUDA.

The flow process must never touch CUDA (a CUDA context does not survive a fork
and holds memory the training subprocess needs), so the GPU count comes from
`nvidia-smi -L` and the visible-devices variable, not from torch.cuda.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from functools import lru_cache

# Dense bf16 peak FLOP/s by GPU name (no sparsity), for MFU. Unknown GPUs get no MFU.
PEAK_BF16_FLOPS = (
    ("H200", 989e12), ("H100", 989e12), ("H800", 989e12), ("GH200", 989e12), ("B200", 2250e12),
    ("A100", 312e12), ("A800", 312e12), ("L40S", 362e12), ("L40", 181e12), ("A10", 125e12),
    ("L4", 121e12), ("RTX 4090", 165e12), ("A6000", 155e12), ("V100", 125e12), ("T4", 65e12),
)


@lru_cache(maxsize=1)
def _nvidia_smi_gpus() -> tuple[str, ...]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return ()
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(line.split(":", 1)[1].split("(")[0].strip() for line in out.splitlines() if line.startswith("GPU "))


def torch_has_cuda() -> bool:
    """Whether the installed torch is a CUDA build (the CPU wheel never sees a GPU)."""
    try:
        from torch.version import cuda
    except ImportError:  # pragma: no cover
        return False
    return cuda is not None


def gpu_names() -> list[str]:
    """The GPUs training would use: those nvidia-smi lists, narrowed by CUDA_VISIBLE_DEVICES. nvidia-smi is asked
    first: with no GPU, torch (2 s to import) is never imported, so `validate` and a cached run stay quick."""
    gpus = list(_nvidia_smi_gpus())
    if not gpus or not torch_has_cuda():
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        wanted = [v.strip() for v in visible.split(",") if v.strip() and v.strip() != "-1"]
        gpus = [gpus[int(v)] for v in wanted if v.isdigit() and int(v) < len(gpus)]
    return gpus


def gpu_count() -> int:
    return len(gpu_names())


def peak_flops(name: str | None) -> float | None:
    if not name:
        return None
    for key, flops in PEAK_BF16_FLOPS:
        if key.lower() in name.lower():
            return flops
    return None


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
