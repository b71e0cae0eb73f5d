"""The one interface every LLM backend implements.

A batch of chat requests goes in; one result per request comes out, in the
same order, each with usage or an error. A backend never raises for a single
failed request: it returns that request's error so the caller can record it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class ChatRequest:
    id: str
    messages: list[dict[str, str]]  # [{"role": "system"|"user"|"assistant", "content": ...}]
    max_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 0.95
    json_schema: dict[str, Any] | None = None  # ask for JSON matching this schema where the backend can
    # The start of the assistant's reply, which the model continues ("response prefill"). A base
    # model that ignores "output JSON" still continues `[{"question": "` as JSON. A backend that
    # cannot prefill (LLMConfig.prefill resolved off), or that constrains this request's output
    # with json_schema (a grammar would start a fresh JSON after the prefill), ignores it.
    prefill: str | None = None
    # Strings after which the reply may end (the JSON of a prefilled reply closing, say). Backends
    # that honour it (transformers, vllm) keep the stop string in `text`; the others ignore it,
    # which only costs tokens: a base model rarely ends its turn on its own.
    stop: list[str] | None = None
    # The sampling seed of this request: a run is reproducible when every request has one (synthesis
    # derives it from the item, wave and request index). None: the backend's LLMConfig.seed, if any.
    seed: int | None = None

    def seed_or(self, default: int | None) -> int | None:
        return self.seed if self.seed is not None else default


@dataclass
class ChatResult:
    """One request's outcome.

    `text` is the whole assistant reply: when the backend applied the request's
    prefill, `text` STARTS WITH the prefill (prefill + continuation), so a
    caller parses it the same way whether or not the prefill was used.
    """

    id: str
    text: str | None = None
    usage: dict[str, int] = field(default_factory=dict)  # prompt_tokens, completion_tokens
    error: str | None = None  # human message; None on success
    error_kind: str | None = None  # timeout | http_error | connection | bad_response | ...
    model: str = ""
    latency_s: float = 0.0
    attempts: int = 1
    finish_reason: str | None = None  # stop | length | ... ("length" = cut at max_tokens)

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failure(cls, req_id: str, kind: str, message: str, model: str = "", prompt_tokens: int = 0) -> "ChatResult":
        """A request that failed before or during generation: its error, and what it cost."""
        return cls(id=req_id, error=message, error_kind=kind, model=model,
                   usage={"prompt_tokens": prompt_tokens, "completion_tokens": 0})


class LLMBackend(Protocol):
    name: str
    model: str

    def generate(self, requests: list[ChatRequest]) -> list[ChatResult]: ...
