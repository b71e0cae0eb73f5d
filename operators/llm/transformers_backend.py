"""In-process generation with transformers (no server).

For CPU runs and tests: defaults to the packaged Gemma 3 270M converted by
`operators.common.models.local_model_path()`. Requests are grouped by sampling
parameters, sorted by length and run in left-padded batches. A request's
prefill is appended after the chat template's generation prompt and returned
at the start of its text. A request that cannot run (prompt too long, no chat
template, a batch that crashes) becomes an error result; the others still run.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from infuse.operators.common.base import STOP
from infuse.operators.llm.base import ChatRequest, ChatResult
from infuse.operators.llm.config import LLMConfig
from infuse.operators.common.models import model_dir

log = logging.getLogger("infuse.llm.transformers")


class _StopRequested:
    """A stopping criterion that ends generation when the run is asked to stop (its output is discarded)."""

    def __call__(self, input_ids: Any, scores: Any, **kw: Any) -> Any:
        import torch

        return torch.full((input_ids.shape[0],), STOP.is_set(), dtype=torch.bool, device=input_ids.device)


class TransformersBackend:
    name = "transformers"

    def __init__(self, cfg: LLMConfig) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.cfg = cfg
        self.model_path = model_dir(cfg.model)
        self.model = self.model_path
        self._lm: Any = None
        self._tok: Any = None
        self._device = "cpu"
        self._load_lock = threading.Lock()
        self._gen_lock = threading.Lock()  # one generate at a time on the shared model

    def __repr__(self) -> str:
        return f"TransformersBackend(model={self.model_path!r}, device={self.cfg.device!r})"

    def _load(self) -> None:
        with self._load_lock:
            if self._lm is not None:
                return
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            device = self.cfg.device
            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            if self.cfg.dtype == "auto":
                dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
            else:
                dtype = getattr(torch, self.cfg.dtype)
            tok = AutoTokenizer.from_pretrained(self.model_path)
            tok.padding_side = "left"
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            lm = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=dtype)
            if os.path.isfile(os.path.join(self.model_path, "generation_config.json")):
                # an adapter dir loads its base's generation config; its own says where a turn ends
                from transformers import GenerationConfig

                lm.generation_config = GenerationConfig.from_pretrained(self.model_path)
            lm.to(device)
            lm.eval()
            self._device, self._tok, self._lm = device, tok, lm

    def _max_len(self) -> int:
        if self.cfg.max_model_len:
            return self.cfg.max_model_len
        return int(getattr(self._lm.config, "max_position_embeddings", 0) or 8192)

    def _eos_ids(self) -> set[int]:
        eos = self._lm.generation_config.eos_token_id
        ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self._tok.eos_token_id is not None:
            ids.add(self._tok.eos_token_id)
        return ids

    def generate(self, requests: list[ChatRequest]) -> list[ChatResult]:
        if not requests:
            return []
        self._load()
        results: dict[int, ChatResult] = {}
        prepared: list[tuple[int, list[int]]] = []
        for i, req in enumerate(requests):
            ids_or_error = self._encode(req)
            if isinstance(ids_or_error, ChatResult):
                results[i] = ids_or_error
            else:
                prepared.append((i, ids_or_error))
        # Same sampling settings share a batch; similar lengths waste less padding.
        groups: dict[tuple[float, float], list[tuple[int, list[int]]]] = {}
        for i, ids in prepared:
            req = requests[i]
            groups.setdefault((req.temperature, req.top_p), []).append((i, ids))
        with self._gen_lock:
            for items in groups.values():
                items.sort(key=lambda item: len(item[1]))
                for b in range(0, len(items), self.cfg.batch_size):
                    batch = items[b : b + self.cfg.batch_size]
                    for i, res in self._run_batch(requests, batch):
                        results[i] = res
        return [results[i] for i in range(len(requests))]

    def _error(self, req: ChatRequest, kind: str, message: str, prompt_tokens: int = 0) -> ChatResult:
        return ChatResult.failure(req.id, kind, message, self.model, prompt_tokens)

    def _encode(self, req: ChatRequest) -> list[int] | ChatResult:
        if not self._tok.chat_template:
            return self._error(req, "no_chat_template", f"tokenizer of {self.model_path} has no chat template")
        try:
            prompt = self._tok.apply_chat_template(req.messages, tokenize=False, add_generation_prompt=True)
            # The prefill goes right after the generation prompt: the model continues its own reply.
            ids = self._tok(prompt + self._prefill(req), add_special_tokens=False)["input_ids"]
        except Exception as exc:  # a malformed message list is a row error
            return self._error(req, "bad_request", f"chat template failed: {type(exc).__name__}: {exc}")
        if len(ids) + req.max_tokens > self._max_len():
            return self._error(
                req,
                "prompt_too_long",
                f"prompt {len(ids)} + max_tokens {req.max_tokens} tokens exceeds {self._max_len()}",
                len(ids),
            )
        return ids

    def _prefill(self, req: ChatRequest) -> str:
        return (req.prefill or "") if self.cfg.use_prefill() else ""

    def _run_batch(self, requests: list[ChatRequest],
                   batch: list[tuple[int, list[int]]]) -> list[tuple[int, ChatResult]]:
        """One batch's results; when the batch fails, its items one by one, so only the culprit fails."""
        start = time.monotonic()
        try:
            outs = self._generate_ids(requests, batch)
        except Exception as exc:
            if len(batch) == 1:
                i, ids = batch[0]
                log.warning("generation failed for %s: %s", requests[i].id, exc)
                return [(i, self._error(requests[i], "generation_failed", f"{type(exc).__name__}: {exc}", len(ids)))]
            # Find the culprit: run the items one by one.
            return [pair for item in batch for pair in self._run_batch(requests, [item])]
        latency = time.monotonic() - start
        return [(i, self._result(requests[i], ids, gen, latency)) for (i, ids), gen in zip(batch, outs)]

    def _result(self, req: ChatRequest, ids: list[int], gen: list[int], latency: float) -> ChatResult:
        """One request's reply from its generated ids: cut at its first end-of-turn token, its max_tokens (the
        batch ran to the largest) or its first stop string, with its prefill in front."""
        eos = self._eos_ids()
        gen = gen[: req.max_tokens]
        n, finish = len(gen), "length"
        for k, tok_id in enumerate(gen):
            if tok_id in eos:
                n, finish = k + 1, "stop"
                break
        body = [t for t in gen[:n] if t not in eos and t != self._tok.pad_token_id]
        text = self._prefill(req) + self._tok.decode(body, skip_special_tokens=True)
        text, stopped = _cut_at_stop(text, req.stop, len(self._prefill(req)))
        return ChatResult(id=req.id, text=text, usage={"prompt_tokens": len(ids), "completion_tokens": n},
                          model=self.model, latency_s=latency, finish_reason="stop" if stopped else finish)

    def _generate_ids(self, requests: list[ChatRequest], batch: list[tuple[int, list[int]]]) -> list[list[int]]:
        """The new token ids of each row of one left-padded batch (rows share temperature and top_p)."""
        import torch

        enc = self._tok.pad({"input_ids": [ids for _, ids in batch]}, padding=True, return_tensors="pt")
        enc = {k: v.to(self._device) for k, v in enc.items()}
        kwargs = self._generate_kwargs([requests[i] for i, _ in batch])
        seed = batch_seed([requests[i].seed_or(self.cfg.seed) for i, _ in batch])
        if seed is None:  # unseeded: the process's RNG, as it stands
            with torch.inference_mode():
                out = self._lm.generate(**enc, **kwargs)
        else:
            # Seeded per batch from its requests' seeds, inside a forked RNG so nothing else's randomness
            # moves: the same requests in the same batches give the same text run after run.
            devices = [torch.device(self._device).index or 0] if self._device.startswith("cuda") else []
            with torch.random.fork_rng(devices=devices), torch.inference_mode():
                torch.manual_seed(seed)
                out = self._lm.generate(**enc, **kwargs)
        width = enc["input_ids"].shape[1]
        return [row[width:].tolist() for row in out]

    def _generate_kwargs(self, reqs: list[ChatRequest]) -> dict[str, Any]:
        """`generate` arguments for a batch: the longest max_tokens, the first request's sampling (the batch
        shares it), every stop string, and a stop on request."""
        from transformers import StoppingCriteriaList

        first = reqs[0]
        kwargs: dict[str, Any] = {"max_new_tokens": max(r.max_tokens for r in reqs),
                                  "pad_token_id": self._tok.pad_token_id}
        if first.temperature and first.temperature > 0:
            kwargs.update(do_sample=True, temperature=first.temperature, top_p=first.top_p, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        stops = sorted({s for r in reqs for s in (r.stop or [])})
        if stops:  # end a row once its JSON closes instead of running to max_new_tokens
            kwargs.update(stop_strings=stops, tokenizer=self._tok)
        kwargs["stopping_criteria"] = StoppingCriteriaList([_StopRequested()])  # SIGTERM ends a batch in seconds
        return kwargs


def batch_seed(seeds: list[int | None]) -> int | None:
    """One seed for a batch from its requests' seeds (None when none has one)."""
    known = [s for s in seeds if s is not None]
    if not known:
        return None
    if len(set(known)) == 1 and len(known) == len(seeds):
        return known[0]
    import hashlib

    digest = hashlib.sha256(",".join("-" if s is None else str(s) for s in seeds).encode()).digest()
    return int.from_bytes(digest[:8], "big") % 2**63


def _cut_at_stop(text: str, stops: list[str] | None, skip: int) -> tuple[str, bool]:
    """Cut after the first stop string past the prefill (a batch may run on past a row's stop)."""
    best = -1
    for stop in stops or []:
        k = text.find(stop, skip)
        if k >= 0 and (best < 0 or k + len(stop) < best):
            best = k + len(stop)
    return (text[:best], True) if best >= 0 else (text, False)
