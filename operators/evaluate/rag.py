"""Retrieval for the +RAG rows: the top-k chunks of the run's corpus (MiniLM) in front of each closed-book
question, so base+RAG and tuned+RAG show what the models could answer with the pages in hand."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from infuse.operators.evaluate.questions import CLOSED_BOOK, Item

RAG_USER = "{context}\n\nQuestion: {question}"
RAG_USER_ZH = "{context}\n\n问题：{question}"

Embed = Callable[[list[str]], Any]


def retrieve(items: list[Item], chunks: list[dict[str, Any]], k: int, max_chars: int,
             embed: Embed | None = None) -> tuple[dict[str, list[dict[str, str]]], dict[str, list[str]]]:
    """For every closed-book item: its prompt with the k nearest chunks (chunks: chunk_id, text), and those
    chunks' ids; both by item id. Nothing when the corpus has no chunk."""
    if not chunks:
        return {}, {}
    from infuse.operators.synthesize.rag import build_index

    if embed is None:
        from infuse.operators.common.models import embed as minilm

        embed = minilm
    text = {c["chunk_id"]: c["text"] for c in chunks}
    index = build_index(chunks, embed)
    asked = [it for it in items if it.group in CLOSED_BOOK]
    hits = index.top_k(embed([it.question for it in asked]), k) if asked else []
    prompts, ids = {}, {}
    for it, found in zip(asked, hits):
        ids[it.item_id] = [cid for cid, _ in found]
        prompts[it.item_id] = rag_prompt(it, [text[c] for c in ids[it.item_id]], max_chars)
    return prompts, ids


def rag_prompt(item: Item, chunks: list[str], max_chars: int) -> list[dict[str, str]]:
    """The item's chat turns with its question preceded by the chunks (numbered, cut to max_chars in all)."""
    budget, parts = max_chars, []
    for n, text in enumerate(chunks, 1):
        if budget <= 0:
            break
        text = text[:budget]
        budget -= len(text)
        parts.append(f"<Context id={n}>\n{text}\n</Context>")
    tpl = RAG_USER_ZH if item.lang == "zh" else RAG_USER
    turn = tpl.format(context="\n".join(parts), question=item.question)
    return [*item.prompt[:-1], {"role": "user", "content": turn}]
