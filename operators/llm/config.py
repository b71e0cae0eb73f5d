"""Configuration of an LLM backend (one pydantic model for all three kinds).

The API key itself is never part of the config: only the NAME of the
environment variable that holds it, so configs can be logged and hashed.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from infuse.operators.common.base import Strict, runtime


class LLMConfig(Strict):
    """Fields made with `runtime(...)` change how calls are made, never what they produce: raising a
    timeout before --retry-failed must not throw the finished shards away."""

    backend: Literal["openai", "transformers", "vllm"] = "openai"
    # openai: the served model name; transformers/vllm: a local dir (None = packaged Gemma 3 270M)
    model: str | None = None
    base_url: str | None = None  # e.g. http://localhost:8000/v1 (openai backend)
    api_key_env: str | None = runtime(None)  # NAME of the env var holding the key
    concurrency: int = runtime(8, ge=1)
    timeout_s: float = runtime(120.0, gt=0)  # total per attempt
    max_retries: int = runtime(3, ge=0)
    backoff_base_s: float = runtime(1.0, ge=0)
    backoff_max_s: float = runtime(30.0, ge=0)
    extra_body: dict[str, Any] = Field(default_factory=dict)  # merged into every request body
    # auto: json_schema, falling back to json_object then plain text if the server rejects it
    json_mode: Literal["auto", "schema", "object", "off"] = "auto"
    seed: int | None = None
    # Send ChatRequest.prefill (start of the assistant reply)? auto = on for transformers and vllm
    # (in process, always possible), off for openai: `continue_final_message` is a vLLM/SGLang
    # extension and e.g. `transformers serve` answers 422 to unknown body fields.
    prefill: Literal["auto", "on", "off"] = "auto"
    # vllm
    tensor_parallel_size: int = runtime(1, ge=1)
    gpu_memory_utilization: float = runtime(0.9, gt=0, le=1)
    max_model_len: int | None = None
    dtype: str = "auto"
    # transformers
    device: str = runtime("auto")  # auto | cpu | cuda | cuda:0 ...
    batch_size: int = runtime(8, ge=1)

    def use_prefill(self) -> bool:
        """Whether this backend sends ChatRequest.prefill (`prefill` with auto resolved)."""
        if self.prefill == "auto":
            return self.backend in ("transformers", "vllm")
        return self.prefill == "on"


def as_config(cfg: Any) -> LLMConfig:
    """Accept an LLMConfig, a dict, or any pydantic model with the same fields."""
    if isinstance(cfg, LLMConfig):
        return cfg
    if isinstance(cfg, dict):
        return LLMConfig.model_validate(cfg)
    if isinstance(cfg, BaseModel):
        return LLMConfig.model_validate(cfg.model_dump())
    raise TypeError(f"cannot build an LLMConfig from {type(cfg).__name__}")
