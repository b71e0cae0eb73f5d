"""Backend for any OpenAI-compatible chat-completions endpoint.

vLLM serve, SGLang, `transformers serve`, DashScope, DeepSeek and OpenAI all
speak the same protocol. Requests run concurrently (asyncio + httpx, bounded by
a semaphore); transient failures (timeouts, connection errors, 429, 5xx,
unparsable bodies) are retried with exponential backoff and full jitter. A
request that still fails becomes a ChatResult with error/error_kind: one bad
request never fails the batch.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import threading
import time
from typing import Any

import httpx

from infuse.operators.common.base import STOP
from infuse.operators.llm.base import ChatRequest, ChatResult
from infuse.operators.llm.config import LLMConfig

log = logging.getLogger("infuse.llm.openai")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# json modes to try in order; a server that rejects one (400/422) moves us down
_JSON_FALLBACK = {"schema": "off", "object": "off", "auto": "object"}


class _Failure(Exception):
    """One failed attempt; `retry` says whether another attempt may help."""

    def __init__(self, kind: str, message: str, retry: bool, retry_after: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry = retry
        self.retry_after = retry_after


def run_sync(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, even inside a running loop.

    Inside a loop (Jupyter, an async Prefect task) asyncio.run would fail, so
    the coroutine gets its own loop in a worker thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="infuse-llm-loop", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


class OpenAIBackend:
    name = "openai"

    def __init__(self, cfg: LLMConfig) -> None:
        if not cfg.model:
            raise ValueError("openai backend needs `model` (the served model name)")
        self.cfg = cfg
        self.model = cfg.model
        self.base_url = (cfg.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._api_key: str | None = None
        if cfg.api_key_env:
            self._api_key = os.environ.get(cfg.api_key_env)
            if not self._api_key:
                raise ValueError(f"environment variable {cfg.api_key_env} (api_key_env) is not set")
        # Current json mode; downgraded (and remembered) when the server rejects it.
        self.json_mode = cfg.json_mode
        self._mode_lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r}, "
            f"api_key_env={self.cfg.api_key_env!r}, concurrency={self.cfg.concurrency})"
        )

    # -- public API -------------------------------------------------------
    def generate(self, requests: list[ChatRequest]) -> list[ChatResult]:
        return run_sync(self.agenerate(requests))

    async def agenerate(self, requests: list[ChatRequest]) -> list[ChatResult]:
        if not requests:
            return []
        sem = asyncio.Semaphore(self.cfg.concurrency)
        limits = httpx.Limits(max_connections=self.cfg.concurrency, max_keepalive_connections=self.cfg.concurrency)
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        async with httpx.AsyncClient(
            headers=headers, limits=limits, timeout=httpx.Timeout(self.cfg.timeout_s)
        ) as client:

            async def one(req: ChatRequest) -> ChatResult:
                async with sem:
                    if STOP.is_set():  # the run is stopping: send nothing more (the caller discards these)
                        return ChatResult.failure(req.id, "interrupted", "the run was asked to stop", self.model)
                    return await self._one(client, req)

            return list(await asyncio.gather(*(one(r) for r in requests)))

    # -- internals --------------------------------------------------------
    def _scrub(self, text: str) -> str:
        """Remove the API key from anything that may end up in a log or a result."""
        if self._api_key and self._api_key in text:
            text = text.replace(self._api_key, "***")
        return text

    def _prefill(self, req: ChatRequest, mode: str) -> str:
        """The prefill sent with this request in json `mode` ("" = none).

        Only when the config turns prefill on (the server must understand vLLM's
        `continue_final_message`), and never together with response_format: a
        JSON grammar would start a fresh value after the prefill.
        """
        if not req.prefill or not self.cfg.use_prefill():
            return ""
        if req.json_schema is not None and mode != "off":
            return ""
        return req.prefill

    def _body(self, req: ChatRequest, mode: str) -> dict[str, Any]:
        messages = list(req.messages)
        prefill = self._prefill(req, mode)
        if prefill:
            messages.append({"role": "assistant", "content": prefill})
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": req.max_tokens,
            "temperature": req.temperature,
            "top_p": req.top_p,
        }
        seed = req.seed_or(self.cfg.seed)
        if seed is not None:
            body["seed"] = seed
        if req.json_schema is not None and mode != "off":
            if mode in ("auto", "schema"):
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": str(req.json_schema.get("title", "response"))[:64], "schema": req.json_schema},
                }
            else:
                body["response_format"] = {"type": "json_object"}
        if prefill:  # vLLM / SGLang / TGI: continue the final assistant message instead of opening a new one
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        body.update(self.cfg.extra_body)
        return body

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        cap = min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * (2**attempt))
        delay = random.uniform(0, cap)  # full jitter
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.cfg.backoff_max_s))
        return delay

    async def _one(self, client: httpx.AsyncClient, req: ChatRequest) -> ChatResult:
        start = time.monotonic()
        attempts = 0
        while True:
            attempts += 1
            try:
                data, mode = await self._attempt(client, req)
                return self._result(req, data, self._prefill(req, mode), start, attempts)
            except _Failure as fail:
                if not fail.retry or attempts > self.cfg.max_retries:
                    return ChatResult(
                        id=req.id,
                        error=fail.message,
                        error_kind=fail.kind,
                        model=self.model,
                        latency_s=time.monotonic() - start,
                        attempts=attempts,
                        usage={"prompt_tokens": 0, "completion_tokens": 0},
                    )
                delay = self._backoff(attempts - 1, fail.retry_after)
                log.warning("request %s attempt %d failed (%s); retrying in %.2fs", req.id, attempts, fail.kind, delay)
                await asyncio.sleep(delay)

    async def _attempt(self, client: httpx.AsyncClient, req: ChatRequest) -> tuple[dict[str, Any], str]:
        """One attempt, including the json-mode fallback when the server rejects it: (response, json mode used)."""
        mode = self.json_mode
        try:
            return await self._post(client, self._body(req, mode)), mode
        except _Failure as fail:
            if fail.kind in ("http_400", "http_422") and req.json_schema is not None and mode != "off":
                found = await self._try_fallback(client, req, mode, fail)
                if found is not None:
                    return found
            raise

    async def _try_fallback(
        self, client: httpx.AsyncClient, req: ChatRequest, mode: str, fail: _Failure
    ) -> tuple[dict[str, Any], str] | None:
        """The server rejected the request; retry with a weaker json mode.

        The downgrade is remembered only if the weaker request succeeds, so a
        400 caused by something else (say a too-long prompt) changes nothing.
        """
        while mode != "off":
            mode = _JSON_FALLBACK[mode]
            try:
                data = await self._post(client, self._body(req, mode))
            except _Failure as again:
                if again.kind in ("http_400", "http_422"):
                    continue
                raise  # transient: the caller retries the whole attempt
            with self._mode_lock:
                if _rank(mode) < _rank(self.json_mode):
                    log.warning(
                        "server rejected json mode %s (%s); using %s from now on", self.json_mode, fail.kind, mode
                    )
                    self.json_mode = mode
            return data, mode
        return None

    async def _post(self, client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}/chat/completions"
        try:
            resp = await asyncio.wait_for(client.post(url, json=body), timeout=self.cfg.timeout_s)
        except (asyncio.TimeoutError, httpx.TimeoutException) as exc:
            raise _Failure("timeout", f"no response within {self.cfg.timeout_s}s ({type(exc).__name__})", True)
        except httpx.TransportError as exc:
            raise _Failure("connection", self._scrub(f"{type(exc).__name__}: {exc}"), True)
        if resp.status_code != 200:
            code = resp.status_code
            retry = code == 429 or code >= 500 or code == 408
            retry_after = _retry_after(resp.headers.get("retry-after"))
            detail = self._scrub(resp.text[:500])
            raise _Failure(f"http_{code}", f"HTTP {code}: {detail}", retry, retry_after)
        try:
            data = resp.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _Failure("bad_response", f"response body is not JSON: {exc}", True)
        if not isinstance(data, dict):
            raise _Failure("bad_response", "response body is not a JSON object", True)
        return data

    def _result(self, req: ChatRequest, data: dict[str, Any], prefill: str, start: float, attempts: int) -> ChatResult:
        """`prefill`: what was sent as the assistant's start; servers return only the continuation."""
        latency = time.monotonic() - start
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"]
            if not isinstance(text, str):
                raise TypeError("content is not a string")
        except (KeyError, IndexError, TypeError) as exc:
            detail = self._scrub(json.dumps(data, ensure_ascii=False)[:300])
            raise _Failure("bad_response", f"unexpected response shape ({exc!r}): {detail}", True)
        usage = data.get("usage") or {}
        return ChatResult(
            id=req.id,
            text=prefill + text,
            usage={
                "prompt_tokens": int(usage.get("prompt_tokens") or 0),
                "completion_tokens": int(usage.get("completion_tokens") or 0),
            },
            model=str(data.get("model") or self.model),
            latency_s=latency,
            attempts=attempts,
            finish_reason=choice.get("finish_reason"),
        )


def _rank(mode: str) -> int:
    return {"off": 0, "object": 1, "schema": 2, "auto": 2}[mode]


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
