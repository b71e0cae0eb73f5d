"""In-process vLLM (GPU) backend.

All prompts of a batch go into ONE `LLM.generate` call so vLLM's continuous
batching schedules them; splitting into small calls would leave the GPU idle.
We apply the chat template ourselves and pass token ids, so a prompt that is
too long becomes an error result instead of an exception that would abort the
whole call; a request's prefill is appended to that prompt and returned at the
start of its text. vllm is a GPU extra and is imported lazily.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any

from infuse.operators.llm.base import ChatRequest, ChatResult
from infuse.operators.llm.config import LLMConfig
from infuse.operators.common.models import model_dir

log = logging.getLogger("infuse.llm.vllm")


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise RuntimeError(
            "backend 'vllm' needs the vllm package (a GPU extra, not installed here): "
            "install it on a CUDA machine, or use backend 'openai' against a vLLM server"
        ) from exc
    return vllm


def constrained(schema: dict[str, Any] | None, json_mode: str) -> bool:
    """Whether a request's output is held to a JSON grammar."""
    return schema is not None and json_mode != "off"


def structured_params(schema: dict[str, Any] | None, json_mode: str) -> dict[str, Any]:
    """SamplingParams kwargs constraining output to JSON, for old and new vLLM.

    vLLM >= 0.12 uses `structured_outputs=StructuredOutputsParams(...)`; older
    releases used `guided_decoding=GuidedDecodingParams(...)`.
    """
    if not constrained(schema, json_mode):
        return {}
    spec: dict[str, Any] = {"json_object": True} if json_mode == "object" else {"json": schema}
    try:
        from vllm.sampling_params import StructuredOutputsParams

        return {"structured_outputs": StructuredOutputsParams(**spec)}
    except ImportError:
        from vllm.sampling_params import GuidedDecodingParams

        return {"guided_decoding": GuidedDecodingParams(**spec)}


class VLLMBackend:
    name = "vllm"

    def __init__(self, cfg: LLMConfig, llm: Any = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.vllm = _import_vllm()
        self.cfg = cfg
        self.model_path = model_dir(cfg.model)
        self.model = self.model_path
        self._llm = llm  # an existing vllm.LLM may be shared (benchmarks)

    def __repr__(self) -> str:
        return f"VLLMBackend(model={self.model_path!r}, tp={self.cfg.tensor_parallel_size})"

    @property
    def llm(self) -> Any:
        if self._llm is None:
            kwargs: dict[str, Any] = {
                "model": self.model_path,
                "tensor_parallel_size": self.cfg.tensor_parallel_size,
                "gpu_memory_utilization": self.cfg.gpu_memory_utilization,
                "dtype": self.cfg.dtype,
            }
            if self.cfg.max_model_len:
                kwargs["max_model_len"] = self.cfg.max_model_len
            if self.cfg.seed is not None:
                kwargs["seed"] = self.cfg.seed
            self._llm = self.vllm.LLM(**kwargs)
        return self._llm

    def _max_len(self) -> int:
        engine = self.llm.llm_engine
        for cfg in (getattr(engine, "model_config", None), getattr(getattr(engine, "vllm_config", None), "model_config", None)):
            if cfg is not None and getattr(cfg, "max_model_len", None):
                return int(cfg.max_model_len)
        return int(self.cfg.max_model_len or 4096)

    def sampling_params(self, req: ChatRequest) -> Any:
        kwargs: dict[str, Any] = {
            "max_tokens": req.max_tokens,
            "temperature": req.temperature,
            "top_p": req.top_p if req.temperature > 0 else 1.0,
        }
        seed = req.seed_or(self.cfg.seed)
        if seed is not None:
            kwargs["seed"] = seed
        kwargs.update(structured_params(req.json_schema, self.cfg.json_mode))
        if req.stop and self.prefill(req):  # only a prefilled reply's JSON ends at these strings
            kwargs.update(stop=list(req.stop), include_stop_str_in_output=True)
        return self.vllm.SamplingParams(**kwargs)

    def prefill(self, req: ChatRequest) -> str:
        """The prefill this request gets: none when output is schema-constrained.

        A JSON grammar starts at the first generated token, so after a prefill
        like `[{"question": "` it would force a second, fresh JSON value.
        """
        if not req.prefill or not self.cfg.use_prefill():
            return ""
        if constrained(req.json_schema, self.cfg.json_mode):
            return ""
        return req.prefill

    def encode(self, req: ChatRequest) -> list[int]:
        tok = self.llm.get_tokenizer()
        prompt = tok.apply_chat_template(req.messages, tokenize=False, add_generation_prompt=True)
        # the prefill continues the assistant turn the generation prompt opened
        return list(tok(prompt + self.prefill(req), add_special_tokens=False)["input_ids"])

    def generate(self, requests: list[ChatRequest]) -> list[ChatResult]:
        if not requests:
            return []
        results: dict[int, ChatResult] = {}
        todo: list[tuple[int, list[int], Any]] = []
        max_len = self._max_len()
        for i, req in enumerate(requests):
            try:
                ids = self.encode(req)
                params = self.sampling_params(req)
            except Exception as exc:
                results[i] = self._error(req, "bad_request", f"{type(exc).__name__}: {exc}")
                continue
            if len(ids) + req.max_tokens > max_len:
                results[i] = self._error(
                    req, "prompt_too_long", f"prompt {len(ids)} + max_tokens {req.max_tokens} exceeds {max_len}", len(ids)
                )
                continue
            todo.append((i, ids, params))
        for i, res in self._run(requests, todo):
            results[i] = res
        return [results[i] for i in range(len(requests))]

    def _run(self, requests: list[ChatRequest], todo: list[tuple[int, list[int], Any]]) -> list[tuple[int, ChatResult]]:
        if not todo:
            return []
        start = time.monotonic()
        try:
            outs = self.llm.generate(
                [{"prompt_token_ids": ids} for _, ids, _ in todo],
                sampling_params=[p for _, _, p in todo],
                use_tqdm=False,
            )
        except Exception as exc:
            if len(todo) == 1:
                i, ids, _ = todo[0]
                return [(i, self._error(requests[i], "generation_failed", f"{type(exc).__name__}: {exc}", len(ids)))]
            log.warning("vllm batch of %d failed (%s); running items one by one", len(todo), exc)
            return [pair for item in todo for pair in self._run(requests, [item])]
        latency = time.monotonic() - start
        results = []
        for (i, ids, _), out in zip(todo, outs):
            comp = out.outputs[0]
            results.append(
                (
                    i,
                    ChatResult(
                        id=requests[i].id,
                        text=self.prefill(requests[i]) + comp.text,
                        usage={"prompt_tokens": len(ids), "completion_tokens": len(comp.token_ids)},
                        model=self.model,
                        latency_s=latency,
                        finish_reason=comp.finish_reason,
                    ),
                )
            )
        return results

    def _error(self, req: ChatRequest, kind: str, message: str, prompt_tokens: int = 0) -> ChatResult:
        return ChatResult.failure(req.id, kind, message, self.model, prompt_tokens)
