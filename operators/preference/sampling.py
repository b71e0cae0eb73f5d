"""The rejected candidates: every prompt's sampled replies from one model, each kept as soon as its batch is done.

A reply is kept in an item memo (the step passes it in) under what it depends
on: the model's content, the backend and sampling settings, the prompt and its
number k. A re-run after a kill, or with more training rows, samples only what
it lacks; a failed request is not kept (it is asked again).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from infuse.operators.common.base import check_stop, key_dump, stable_hash
from infuse.operators.llm import ChatRequest, LLMConfig, make_backend
from infuse.operators.llm.base import LLMBackend
from infuse.operators.preference.config import PreferenceConfig
from infuse.operators.preference.pairs import Candidate, Prompt


class Memo(Protocol):
    """What sampling needs of an item memo (tasks/framework/item_memo.py's ItemMemo)."""

    def get(self, key: str) -> tuple[Any, dict[str, str]] | None: ...

    def put(self, entries: Iterable[tuple[str, Any, dict[str, str] | None]]) -> None: ...

    def finish(self, keep: Iterable[str]) -> None: ...

    def stats(self) -> dict[str, int]: ...


# (total, description, unit) -> a progress bar with update(n), used as a context manager (StepContext.progress)
ProgressFn = Callable[[int, str, str], AbstractContextManager[Any]]
BackendFn = Callable[[LLMConfig], LLMBackend]


@dataclass(frozen=True)
class ReplyModel:
    """A model the rejected replies come from."""

    name: str  # base | sft
    llm: LLMConfig  # how to ask it: a local backend loads `llm.model` (its folder), openai asks a server
    sft_sha256: str  # the SFT model artifact's content hash (the base is asked in the SFT template)

    @property
    def model_id(self) -> str:
        return self.sft_sha256 if self.name == "sft" else f"base-under:{self.sft_sha256}"

    def setting(self, cfg: PreferenceConfig) -> list[Any]:
        """What a reply depends on besides its prompt and k (a local model's folder is left out: model_id is
        its content)."""
        llm = key_dump(self.llm) if self.llm.backend == "openai" else key_dump(self.llm.model_copy(update={"model": None}))
        return [self.model_id, llm, cfg.temperature, cfg.top_p, cfg.max_new_tokens, cfg.seed]


def sample_seed(seed: int, messages: list[dict[str, str]], k: int) -> int:
    """The sampling seed of a prompt's k-th reply: from what its memo key holds (the recipe's seed, the
    prompt, k), so a run samples the same replies again, on any backend that takes a seed."""
    return int(stable_hash([seed, messages, k])[:8], 16)


def _requests(prompts: list[Prompt], cfg: PreferenceConfig) -> list[ChatRequest]:
    """A request per reply; each seeded by sample_seed, unless the llm section sets a seed (sent as it is, as
    synthesis does)."""
    derive = cfg.llm.seed is None
    return [ChatRequest(f"{p.sample_id}#{k}", p.prompt, max_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                        top_p=cfg.top_p, seed=sample_seed(cfg.seed, p.prompt, k) if derive else None)
            for p in prompts for k in range(cfg.samples_per_prompt)]


def _memo_key(setting: list[Any], req: ChatRequest) -> str:
    return stable_hash(["pref-sample.v2", *setting, req.messages, req.id.rsplit("#", 1)[1]])[:32]


def _candidate(model: str, request_id: str, text: str | None, finish_reason: str | None,
               error: str | None = None) -> Candidate:
    sid, k = request_id.rsplit("#", 1)
    return Candidate(sid, model, int(k), text, finish_reason, error)


def _remembered(memo: Memo, model: str, requests: list[ChatRequest], keys: list[str]) -> dict[int, Candidate]:
    """The replies the memo already holds, by request index."""
    got: dict[int, Candidate] = {}
    for i, (req, key) in enumerate(zip(requests, keys)):
        found = memo.get(key)
        if found is not None:
            got[i] = _candidate(model, req.id, found[0]["text"], found[0]["finish_reason"])
    return got


def _generate(model: ReplyModel, requests: list[ChatRequest], keys: list[str], todo: list[int], memo: Memo,
              bar: Any, got: dict[int, Candidate], backend_fn: BackendFn) -> None:
    """Ask the model for the replies `todo` lacks, a batch per call (progress, and a stop between calls), keeping
    each batch's good replies at once. The backend, and its model, is gone when this returns: before the next
    model loads."""
    backend = backend_fn(model.llm)
    batch = max(model.llm.batch_size, model.llm.concurrency)
    for b in range(0, len(todo), batch):
        check_stop()
        part = todo[b:b + batch]
        for i, res in zip(part, backend.generate([requests[i] for i in part])):
            got[i] = _candidate(model.name, requests[i].id, res.text, res.finish_reason, res.error)
        memo.put([(keys[i], {"text": got[i].text, "finish_reason": got[i].finish_reason}, None)
                  for i in part if got[i].error is None])
        bar.update(len(part))


def sample_replies(prompts: list[Prompt], model: ReplyModel, cfg: PreferenceConfig, memo: Memo,
                   progress: ProgressFn, backend_fn: BackendFn | None = None) -> list[Candidate]:
    """samples_per_prompt replies to every prompt from one model, in prompt order; the memo keeps just these."""
    requests = _requests(prompts, cfg)
    setting = model.setting(cfg)
    keys = [_memo_key(setting, r) for r in requests]
    got = _remembered(memo, model.name, requests, keys)
    todo = [i for i in range(len(requests)) if i not in got]
    with progress(len(requests), f"preference: sampling {model.name}", "replies") as bar:
        bar.update(len(got))
        if todo:
            _generate(model, requests, keys, todo, memo, bar, got, backend_fn or make_backend)
    memo.finish(keys)
    return [got[i] for i in range(len(requests))]
