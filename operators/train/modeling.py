"""Loading the model to train: dtype, attention kernel, quantisation, Liger, adapters.

Runs inside the worker only (it may touch CUDA). The attention kernel is the
fastest one here that keeps packed samples apart:

- `flash_attention_2` when flash-attn is installed (varlen through the
  collator's cu_seq_lens);
- `infuse_varlen` on other GPUs: torch's own `varlen_attn` (FlashAttention
  inside PyTorch, torch >= 2.9), registered below as a transformers attention
  function, fed the same cu_seq_lens; sliding windows and GQA included;
- `sdpa` on CPU: transformers sees packed position ids and builds a
  block-diagonal causal mask, so samples never attend to each other;
- `flex_attention` on request: the same document mask as a sparse BlockMask.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch

from infuse.operators.train.config import LoraOptions
from infuse.operators.train.devices import installed

VARLEN = "infuse_varlen"


def on_gpu() -> bool:
    return torch.cuda.is_available() and os.environ.get("CUDA_VISIBLE_DEVICES", None) != ""


def resolve_dtype(name: str | None, gpu: bool) -> torch.dtype:
    if name in (None, "auto"):
        return torch.bfloat16 if gpu and torch.cuda.is_bf16_supported() else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def resolve_attn(name: str | None, gpu: bool, dtype: torch.dtype) -> str:
    half = dtype in (torch.bfloat16, torch.float16)
    if name and name != "auto":
        if name == "varlen":
            name = VARLEN
        if name == VARLEN:
            register_varlen()
        return name
    if gpu and half and installed("flash_attn"):
        return "flash_attention_2"
    if gpu and half and register_varlen():
        return VARLEN
    return "sdpa"


def varlen_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: Any, dropout: float = 0.0, scaling: float | None = None,
                     sliding_window: int | None = None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """A transformers attention function over torch.nn.attention.varlen: one flattened row of packed
    samples (batch 1) with their boundaries in cu_seq_lens_q."""
    from torch.nn.attention.varlen import varlen_attn

    b, hq, t, d = query.shape
    cu = kwargs.get("cu_seq_lens_q")
    max_len = kwargs.get("max_length_q")
    if cu is None:
        pos = kwargs.get("position_ids")
        if pos is None or b != 1:
            raise ValueError("infuse_varlen attention needs padding-free batches (cu_seq_lens_q or position_ids)")
        starts = (pos[0] == 0).nonzero().flatten()
        cu = torch.cat([starts, torch.tensor([t], device=starts.device)])
    if b != 1:
        raise ValueError("infuse_varlen attention needs padding-free batches (one flattened row)")
    cu = cu.to(device=query.device, dtype=torch.int32)
    if max_len is None:
        max_len = int(cu.diff().max())
    window = (sliding_window - 1, 0) if sliding_window else (-1, 0)
    q = query[0].transpose(0, 1).contiguous()  # (T, Hq, D)
    k = key[0].transpose(0, 1).contiguous()
    v = value[0].transpose(0, 1).contiguous()
    out = varlen_attn(q, k, v, cu, cu, int(max_len), int(max_len), scale=scaling, window_size=window,
                      enable_gqa=k.shape[1] != hq)
    return out.unsqueeze(0), None


_REGISTERED: list[bool] = []


def register_varlen() -> bool:
    """Register infuse_varlen with transformers (once); False when this torch has no varlen_attn."""
    if _REGISTERED:
        return _REGISTERED[0]
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
        from transformers import AttentionInterface

        AttentionInterface.register(VARLEN, varlen_attention)
        ok = True
    except Exception:
        ok = False
    _REGISTERED.append(ok)
    return ok


def load_model(path: str, dtype: torch.dtype, attn: str, quantize_4bit: bool = False) -> Any:
    from transformers import AutoModelForCausalLM

    kw: dict[str, Any] = {"dtype": dtype, "attn_implementation": attn}
    if quantize_4bit:
        from transformers import BitsAndBytesConfig

        kw["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                       bnb_4bit_use_double_quant=True,
                                                       bnb_4bit_compute_dtype=torch.bfloat16,
                                                       bnb_4bit_quant_storage=torch.bfloat16)
        kw["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}  # 4-bit weights live on this rank's GPU
    model = AutoModelForCausalLM.from_pretrained(path, **kw)
    model.config.use_cache = False
    return model


def apply_liger(model: Any, want: bool | None, gpu: bool) -> bool:
    """Liger's fused RMSNorm / RoPE / MLP kernels on the model (the loss stays trl's chunked one)."""
    if want is False or (want is None and not gpu) or not installed("liger_kernel"):
        if want and not installed("liger_kernel"):
            raise RuntimeError("liger: true, but liger-kernel is not installed (pip install liger-kernel)")
        return False
    from liger_kernel.transformers import _apply_liger_kernel_to_instance

    _apply_liger_kernel_to_instance(model=model, fused_linear_cross_entropy=False, cross_entropy=False)
    return True


def lora_config(opts: LoraOptions, dora: bool = False) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=opts.r, lora_alpha=opts.alpha, lora_dropout=opts.dropout, bias="none",
                      target_modules=opts.target_modules, use_dora=dora, task_type="CAUSAL_LM")


def params_on_disk(path: str | Path) -> int | None:
    """Parameters of a model directory, from its safetensors headers (no weights are read); None when it has
    no safetensors file. WHY: `method: auto` picks full fine-tuning or LoRA by model size before loading."""
    files = sorted(Path(path).glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for f in files:
        with open(f, "rb") as fh:
            size = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(size))
        for name, t in header.items():
            if name != "__metadata__":
                total += math.prod(t["shape"])
    return total


def freeze_embeddings(model: Any) -> int:
    """Stop training the input embeddings and, when tied to them, the LM head; returns the frozen count."""
    emb = model.get_input_embeddings().weight
    emb.requires_grad_(False)  # a tied LM head is this same tensor
    return emb.numel()


def param_count(model: Any) -> tuple[int, int]:
    """(all parameters, trainable parameters)."""
    total = trainable = 0
    for p in model.parameters():
        n = p.ds_numel if hasattr(p, "ds_numel") else p.numel()
        total += n
        trainable += n if p.requires_grad else 0
    return total, trainable
