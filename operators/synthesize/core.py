"""What strategies share: lookups of chunks/documents, prompt loading, and the
call helpers that let a strategy be a generator yielding request batches.

A strategy is a generator: it yields a list of ChatRequest and receives the
list of ChatResult for them (same order); it returns a list of Draft. The
runner advances every item's generator one step per wave and sends all the
requests of a wave to the backend in ONE generate() call, so vLLM batches them.
"""
from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Generator, Iterable

import pyarrow as pa

from infuse.operators.common.lang import LANGS, prose_lang
from infuse.operators.llm.base import ChatRequest, ChatResult
from infuse.operators.prompts import Prompt, load_prompt
from infuse.operators.synthesize.config import SynthConfig
from infuse.operators.synthesize.jsonrepair import ParseError

Gen = Generator[list[ChatRequest], list[ChatResult], Any]

_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)


class ItemFailure(Exception):
    """The whole item cannot produce anything (e.g. its chunk is missing)."""

    def __init__(self, kind: str, message: str, raw: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.raw = raw


def rows_by_key(data: Any, key: str) -> dict[str, dict[str, Any]]:
    """A pa.Table, a list of row dicts or a dict keyed already -> {key: row}."""
    if data is None:
        return {}
    if isinstance(data, pa.Table):
        return {r[key]: r for r in data.to_pylist()}
    if isinstance(data, dict):
        return data
    return {r[key]: r for r in data}


def doc_metadata(doc: dict[str, Any]) -> dict[str, Any]:
    meta = doc.get("metadata")
    if isinstance(meta, dict):
        return meta
    if not meta:
        return {}
    try:
        value = json.loads(meta)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def split_usage(usage: dict[str, int], n: int) -> list[dict[str, int]]:
    """Share one call's usage among the n samples it made; the sums stay exact."""
    if n <= 0:
        return []
    out = []
    for i in range(n):
        part = {}
        for k in ("prompt_tokens", "completion_tokens"):
            total = int(usage.get(k, 0) or 0)
            part[k] = total // n + (1 if i < total % n else 0)
        out.append(part)
    return out


def add_usage(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: int(a.get(k, 0) or 0) + int(b.get(k, 0) or 0) for k in ("prompt_tokens", "completion_tokens")}


def clean_text(text: str | None) -> str:
    """Model text without <think> blocks and surrounding blank space."""
    return _THINK.sub("", text or "").strip()


def llm_error_kind(result: ChatResult) -> str:
    kind = (result.error_kind or "error").lower()
    return kind if kind.startswith("llm_") or kind == "no_backend" else f"llm_{kind}"


@dataclass
class Track:
    """Per-item bookkeeping: calls, failures (first one kept with raw text), usage, model."""

    calls: int = 0
    failed_calls: int = 0
    error_kind: str | None = None
    error: str | None = None
    raw_text: str | None = None
    model: str = ""
    usage: dict[str, int] = field(default_factory=dict)

    def record(self, results: Iterable[ChatResult]) -> None:
        for r in results:
            self.calls += 1
            self.usage = add_usage(self.usage, r.usage or {})
            if r.ok and r.model and not self.model:
                self.model = r.model

    def fail(self, kind: str, message: str, raw: str | None) -> None:
        self.failed_calls += 1
        if self.error_kind is None:
            self.error_kind, self.error, self.raw_text = kind, message, raw


@dataclass
class Answer:
    """One request's final outcome after retries: parsed value (None when it failed)."""

    value: Any
    usage: dict[str, int]
    model: str
    raw: str | None


def call(track: Track, requests: list[ChatRequest], parse: Callable[[str | None], Any],
         max_attempts: int = 1) -> Gen:
    """Send requests (one wave), parse each result, retry the malformed ones; returns list[Answer].

    Transport errors are not retried here (the backend retries those); parse
    errors are, up to max_attempts, as a further wave. The final failure of a
    request is recorded on the track with its raw text.
    """
    answers: list[Answer] = [Answer(None, {}, "", None) for _ in requests]
    pending = list(range(len(requests)))
    for attempt in range(max_attempts):
        if not pending:
            break
        batch = [replace(requests[i], id=f"{requests[i].id or 'r'}#{attempt}") for i in pending]
        results = yield batch
        track.record(results)
        retry: list[int] = []
        for i, res in zip(pending, results):
            ans = answers[i]
            ans.usage = add_usage(ans.usage, res.usage or {})
            ans.raw = res.text
            if not res.ok:
                track.fail(llm_error_kind(res), res.error or "request failed", res.text)
                continue
            try:
                ans.value = parse(res.text)
                ans.model = res.model
            except ParseError as e:
                if attempt + 1 < max_attempts:
                    retry.append(i)
                else:
                    track.fail(e.kind, str(e), res.text)
        pending = retry
    return answers


def json_stop(prefill: str | None) -> list[str] | None:
    """Where a prefilled JSON array ends: `}]` for an array of objects, `"]` for an array of strings."""
    if not prefill or not prefill.startswith("["):
        return None
    return ["}]"] if prefill.startswith("[{") else ['"]']


def prefill_for(prompt: Prompt, default: str) -> str | None:
    """The reply start for a JSON-asking prompt: its `prefill` key if it has one ("" = none), else `default`.

    `default` opens the shape the packaged prompt's output contract asks for, so
    a base model that ignores the instructions still continues valid JSON; a
    prompt override asking for another shape sets its own `prefill`.
    """
    value = prompt.extra.get("prefill", default)
    return str(value) if value else None


def text_lang(cfg: SynthConfig, text: str, fallback: str) -> str:
    """The language a sample about `text` is written in: the recipe's `lang` when forced, else the
    language of the text's prose (`infuse.operators.common.lang.prose_lang`), else `fallback`."""
    if cfg.lang in LANGS:
        return cfg.lang
    return prose_lang(text, fallback)


def parse_text(text: str | None) -> str:
    """A free-text answer: must not be empty once <think> blocks are removed."""
    out = clean_text(text)
    if not out:
        raise ParseError("empty_output", "the model returned no text")
    return out


class Context:
    """Everything a strategy may look up; built once per run_items call."""

    def __init__(self, cfg: SynthConfig, chunks: Any = None, docs: Any = None,
                 embed_fn: Callable[[list[str]], Any] | None = None, index: Any = None,
                 backend_model: str = "") -> None:
        self.cfg = cfg
        self.chunks = rows_by_key(chunks, "chunk_id")
        self.docs = rows_by_key(docs, "doc_id")
        self.embed_fn = embed_fn
        self.index = index
        self.backend_model = backend_model
        self._prompts: dict[tuple[str, str], Prompt] = {}
        self._by_doc: dict[str, list[dict[str, Any]]] | None = None

    # prompts -------------------------------------------------------------
    def prompt(self, name: str, lang: str) -> Prompt:
        key = (name, lang)
        if key not in self._prompts:
            override = self.cfg.prompt_overrides.get(f"{name}.{lang}") or self.cfg.prompt_overrides.get(name)
            self._prompts[key] = load_prompt(name, lang, override)
        return self._prompts[key]

    def request(self, messages: list[dict[str, str]], json_schema: dict[str, Any] | None = None,
                max_tokens: int | None = None, prefill: str | None = None) -> ChatRequest:
        return ChatRequest(id="", messages=messages, max_tokens=max_tokens or self.cfg.max_tokens,
                           temperature=self.cfg.temperature, json_schema=json_schema, prefill=prefill or None,
                           stop=json_stop(prefill))

    # lookups -------------------------------------------------------------
    def chunk(self, chunk_id: str) -> dict[str, Any]:
        row = self.chunks.get(chunk_id)
        if row is None:
            raise ItemFailure("missing_source", f"chunk {chunk_id} is not in the chunks given to run_items")
        return row

    def doc(self, doc_id: str) -> dict[str, Any]:
        row = self.docs.get(doc_id)
        if row is None:
            raise ItemFailure("missing_source", f"document {doc_id} is not in the documents given to run_items")
        return row

    def doc_chunks(self, doc_id: str) -> list[dict[str, Any]]:
        if self._by_doc is None:
            by: dict[str, list[dict[str, Any]]] = {}
            for c in self.chunks.values():
                by.setdefault(c["doc_id"], []).append(c)
            for v in by.values():
                v.sort(key=lambda c: (c["start"], c["end"]))
            self._by_doc = by
        return self._by_doc.get(doc_id, [])

    def chunks_over(self, doc_id: str, start: int, end: int) -> list[str]:
        """Ids of the doc's chunks overlapping [start, end), in order."""
        out = []
        for c in self.doc_chunks(doc_id):
            if c["start"] < max(end, start + 1) and c["end"] > start:
                out.append(c["chunk_id"])
        return out

    def topic(self, chunk: dict[str, Any], separator: str = " > ") -> str:
        """What a chunk is about, for questions like "介绍一下{topic}。": its heading path, else its
        document's title, else its file name."""
        heads = [h.strip() for h in chunk.get("heading_path") or [] if h and h.strip()]
        if heads:
            return separator.join(heads)
        doc = self.docs.get(chunk.get("doc_id", "")) or {}
        title = (doc.get("title") or "").strip()
        if title:
            return title
        path = chunk.get("path") or doc.get("path") or ""
        return path.rsplit("/", 1)[-1].rsplit(".", 1)[0] or path

    def chunk_at(self, doc_id: str, offset: int) -> str:
        chunks = self.doc_chunks(doc_id)
        if not chunks:
            return ""
        starts = [c["start"] for c in chunks]
        i = max(0, bisect.bisect_right(starts, offset) - 1)
        return chunks[i]["chunk_id"]
