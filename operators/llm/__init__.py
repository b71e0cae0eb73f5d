"""LLM backends behind one small interface (see base.py).

`make_backend(cfg)` is the only entry point callers need; backends are
imported lazily so that e.g. vllm (a GPU extra) is only needed when chosen.
"""
from __future__ import annotations

from typing import Any

from infuse.operators.llm.base import ChatRequest, ChatResult, LLMBackend
from infuse.operators.llm.config import LLMConfig, as_config

__all__ = ["ChatRequest", "ChatResult", "LLMBackend", "LLMConfig", "make_backend"]


def make_backend(cfg: Any) -> LLMBackend:
    """Build the backend named by `cfg.backend` (cfg: LLMConfig, dict or pydantic model)."""
    config = as_config(cfg)
    if config.backend == "openai":
        from infuse.operators.llm.openai import OpenAIBackend

        return OpenAIBackend(config)
    if config.backend == "transformers":
        from infuse.operators.llm.transformers_backend import TransformersBackend

        return TransformersBackend(config)
    if config.backend == "vllm":
        from infuse.operators.llm.vllm_backend import VLLMBackend

        return VLLMBackend(config)
    raise ValueError(f"unknown backend {config.backend!r}")
