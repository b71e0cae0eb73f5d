"""plan: the work items of a synthesis run, before any call, and the chunks that get none.

Each document is one `DocSource`; each of its format's strategies says which
items it gives (strategy.py). Code blocks of a prose document take the code
strategies that ask an LLM instead. Order and ids are deterministic.

Every input chunk's fate is written down (`plan_items`): a chunk no strategy
takes is a `no_work_item` reject, an LLM item over `max_llm_items` an
`over_max_llm_items` one.
"""
from __future__ import annotations

from typing import Any, Iterator

import pyarrow as pa

from infuse.operators.common.base import Reject
from infuse.operators.common.formats import family
from infuse.operators.common.lang import detect_lang
from infuse.operators.synthesize.config import SynthConfig
from infuse.operators.synthesize.core import rows_by_key, text_lang
from infuse.operators.synthesize.schema import WorkItem
from infuse.operators.synthesize.strategy import DocSource, Strategy, asks_llm, strategies, strategy


def plan(chunks: pa.Table | list[dict[str, Any]], docs: pa.Table | list[dict[str, Any]],
         cfg: SynthConfig) -> list[WorkItem]:
    """One WorkItem per (strategy, chunk) for chunk strategies, per (strategy, document) for
    record/section templates, facts and summaries, per language for identity. Deterministic order and ids.

    A chunk of kind "code" in a document that is not code (a fenced or <pre>
    block of Markdown or HTML) takes the code strategies (`by_format.code`,
    default code_tasks) instead of its document's chunk strategies.
    """
    items: list[WorkItem] = []
    for source in _sources(chunks, docs, cfg):
        items += _doc_items(cfg, source)
    for s in strategies():
        items += s.standalone_items(cfg)
    return items


def _sources(chunks: Any, docs: Any, cfg: SynthConfig) -> Iterator[DocSource]:
    """Every document (or document id that only chunks name), by id, with its chunks in order."""
    chunk_rows = rows_by_key(chunks, "chunk_id")
    doc_rows = rows_by_key(docs, "doc_id")
    by_doc: dict[str, list[dict[str, Any]]] = {}
    for c in chunk_rows.values():
        by_doc.setdefault(c["doc_id"], []).append(c)
    for doc_id in sorted(set(doc_rows) | set(by_doc)):
        doc = doc_rows.get(doc_id)
        dchunks = sorted(by_doc.get(doc_id, []), key=lambda c: (c["start"], c["end"]))
        fmt = (doc or (dchunks[0] if dchunks else {})).get("format", "") or ""
        sample = (doc or {}).get("text", "") or "".join(c["text"] for c in dchunks[:3])
        lang = text_lang(cfg, sample[:4000], detect_lang(sample, cfg.zh_threshold, cfg.lang))
        prose, blocks = _prose_and_blocks(dchunks, fmt)
        yield DocSource(doc_id, doc, dchunks, prose, blocks, lang, fmt)


def _prose_and_blocks(chunks: list[dict[str, Any]], fmt: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(chunks for the document's strategies, code blocks for the code strategies); a code file has no blocks."""
    if family(fmt) == "code":
        return chunks, []
    return [c for c in chunks if c.get("kind") != "code"], [c for c in chunks if c.get("kind") == "code"]


def _named(cfg: SynthConfig, fmt: str) -> list[str]:
    """The format's strategies, and those that join them unnamed (self_instruct beside qa or rag)."""
    names = cfg.strategies_for(fmt)
    for s in strategies():
        if s.name not in names and s.joins(cfg, names):
            names.append(s.name)
    return names


def _doc_items(cfg: SynthConfig, source: DocSource) -> list[WorkItem]:
    items: list[WorkItem] = []
    for name in _named(cfg, source.format):
        items += _known(name).plan(cfg, source)
    for name in cfg.strategies_for("code") if source.blocks else []:
        s = _known(name)
        if s.llm:
            items += s.chunk_items(cfg, source, source.blocks)
    return items


def _known(name: str) -> Strategy:
    found = strategy(name)
    if found is None:  # SynthConfig accepts registered names only
        raise KeyError(f"no synthesis strategy named {name!r}")
    return found


def plan_items(syn: SynthConfig, chunks: pa.Table, docs: pa.Table,
               max_llm_items: int | None = None) -> tuple[list[WorkItem], list[Reject]]:
    """The work items, and a reject for every chunk or item that gets no synthesis."""
    items, skipped = _cap(plan(chunks, docs, syn), max_llm_items)
    capped_chunks = {r.detail["chunk_id"] for r in skipped}
    return items, skipped + _unplanned(syn, chunks, items, capped_chunks)


def _cap(items: list[WorkItem], max_llm_items: int | None) -> tuple[list[WorkItem], list[Reject]]:
    """The items within max_llm_items LLM items (templates are not counted), and a reject for each beyond."""
    if max_llm_items is None:
        return items, []
    kept, skipped, n = [], [], 0
    for it in items:
        if asks_llm(it.strategy):
            if n >= max_llm_items:
                skipped.append(Reject(it.item_id, "over_max_llm_items",
                                      f"{it.strategy} item not run: max_llm_items is {max_llm_items}",
                                      {"strategy": it.strategy, "chunk_id": it.chunk_id}))
                continue
            n += 1
        kept.append(it)
    return kept, skipped


def _unplanned(syn: SynthConfig, chunks: pa.Table, items: list[WorkItem], capped_chunks: set[str]) -> list[Reject]:
    """A `no_work_item` reject for every chunk no item covers (neither its own nor its whole document's)."""
    planned_chunks = {it.chunk_id for it in items if it.chunk_id}
    whole_docs = {it.doc_id for it in items if not it.chunk_id and it.doc_id}
    out = []
    for cid, did, fmt, text in zip(*(chunks.column(c).to_pylist() for c in ("chunk_id", "doc_id", "format", "text"))):
        if cid in planned_chunks or cid in capped_chunks or did in whole_docs:
            continue
        out.append(Reject(cid, "no_work_item", f"no synthesis strategy took this {fmt} chunk "
                          f"(strategies for {fmt}: {syn.strategies_for(fmt) or 'none'}; "
                          f"min_chunk_chars {syn.min_chunk_chars})", {"chars": len(text or "")}))
    return out
