"""What a synthesis work item's result depends on, as a key a memo can keep it under across runs.

An item's id already covers its strategy, source id, prompt names and versions
and the synthesis settings. The memo key adds the LLM (backend, model and
sampling settings: not timeouts or concurrency) and the hash of the item's
own source text, so a chunk whose text changed (another clean setting, say)
is asked again. Chunks an item read besides its own (RAG and RAFT contexts)
are its `deps`: the kept result is used only while each still has the text
it had.

Only LLM items are kept: templates cost nothing to redo, and redoing them
picks up a code change. A failed item is kept only when the LLM answered
(it was paid for and its reply was bad); a transport failure is asked again.
"""
from __future__ import annotations

from typing import Any

import xxhash

from infuse.operators.common.base import stable_hash
from infuse.operators.synthesize.schema import WorkItem
from infuse.operators.synthesize.strategy import asks_llm


def text_hash(text: str | None) -> str:
    """A fast hash of a text (xxh3), enough to tell a changed source."""
    return xxhash.xxh3_64_hexdigest((text or "").encode("utf-8", "surrogatepass"))


def memo_key(item: WorkItem, llm_id: str, chunks: dict[str, Any], docs: dict[str, Any]) -> str | None:
    """The item's memo key, or None for an item the memo does not keep (templates)."""
    if not asks_llm(item.strategy):
        return None
    if item.chunk_id:
        source = text_hash((chunks.get(item.chunk_id) or {}).get("text"))
    elif item.doc_id:
        source = text_hash((docs.get(item.doc_id) or {}).get("text"))
    else:
        source = ""
    return stable_hash(["synth-item.v1", item.item_id, llm_id, source])[:32]


def deps_of(item: WorkItem, rows: list[dict[str, Any]], chunks: dict[str, Any]) -> dict[str, str]:
    """The other chunks the item's samples were made from, with the hash of their text."""
    ids = {cid for r in rows for cid in (r.get("source_chunk_ids") or [])} - {item.chunk_id, ""}
    return {cid: text_hash(chunks[cid].get("text")) for cid in sorted(ids) if cid in chunks}


def deps_hold(deps: dict[str, str], chunks: dict[str, Any]) -> bool:
    """Every chunk the kept result read is still there with the same text."""
    return all(cid in chunks and text_hash(chunks[cid].get("text")) == h for cid, h in deps.items())


def keepable(status: dict[str, Any]) -> bool:
    """Done, or failed on a reply the LLM did give (paid for): not a transport failure, asked again."""
    return status["status"] == "done" or status.get("raw_text") is not None
