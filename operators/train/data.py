"""Training rows: chat samples -> token ids with loss labels -> packed rows in a fixed order.

Labels are the token ids where the loss is taken and -100 elsewhere. For chat
samples that is every assistant turn plus its end-of-turn token (the
template's `{% generation %}` span), in multi-turn samples too; system and
user tokens are masked. For continued pretraining it is every token.

Packing is trl's best-fit-decreasing: whole samples into rows of at most
`max_length` tokens, each row remembering its samples' lengths
(`seq_lengths`), so the padding-free collator gives every sample its own
position ids and attention never crosses a sample boundary.

The order of rows is fixed here, epoch by epoch (a seeded permutation per
epoch), and the trainer reads them sequentially: a resumed run, and the second
phase of hybrid, continue exactly where the data stream stopped.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

IGNORE = -100
ROLES = ("system", "user", "assistant")


@dataclass
class Prepared:
    """Token rows ready for the trainer, and what happened to each input sample."""

    examples: list[dict[str, list[int]]]  # input_ids, labels
    rejects: list[dict[str, Any]] = field(default_factory=list)  # id, reason, message
    truncated: int = 0
    tokens: int = 0
    trained_tokens: int = 0


def check_messages(messages: Any) -> str | None:
    """Why a sample's messages cannot be trained on, or None."""
    if not isinstance(messages, list) or not messages:
        return "malformed_messages"
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            return "malformed_messages"
    if not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
        return "no_assistant_turn"
    return None


def tokenize_chat(tokenizer: Any, messages: list[dict[str, str]], template: str) -> tuple[list[int], list[int]]:
    """Token ids and labels of one chat sample under the template (assistant spans trained)."""
    out = tokenizer.apply_chat_template([{"role": m["role"], "content": m["content"]} for m in messages],
                                        tokenize=True, return_dict=True, return_assistant_tokens_mask=True,
                                        chat_template=template)
    ids = list(out["input_ids"])
    labels = [t if m else IGNORE for t, m in zip(ids, out["assistant_masks"])]
    return ids, labels


def prepare_chat(rows: list[dict[str, Any]], tokenizer: Any, template: str, max_length: int) -> Prepared:
    """Tokenize chat samples; samples that cannot train (malformed, no reply, a reply cut off entirely by
    max_length) are rejects with a reason."""
    prep = Prepared([])
    for row in rows:
        sid = str(row.get("sample_id") or row.get("id") or len(prep.examples) + len(prep.rejects))
        why = check_messages(row.get("messages"))
        if why:
            prep.rejects.append({"id": sid, "reason": why, "message": "no trainable assistant turn"
                                 if why == "no_assistant_turn" else "messages must be a list of "
                                 "{role: system|user|assistant, content: str}"})
            continue
        ids, labels = tokenize_chat(tokenizer, row["messages"], template)
        cut = len(ids) > max_length
        ids, labels = ids[:max_length], labels[:max_length]
        if sum(1 for x in labels[1:] if x != IGNORE) == 0:
            prep.rejects.append({"id": sid, "reason": "too_long", "message": f"the prompt fills max_length "
                                 f"{max_length}: no reply token is left to train on"})
            continue
        prep.examples.append({"input_ids": ids, "labels": labels})
        prep.truncated += cut
        prep.tokens += len(ids)
        prep.trained_tokens += sum(1 for x in labels if x != IGNORE)
    return prep


def prepare_text(texts: list[str], tokenizer: Any, max_length: int) -> Prepared:
    """Continued pretraining: every token trained; a text longer than a row is split into row-sized pieces
    (each its own sequence: no attention from one piece into the next)."""
    prep = Prepared([])
    eos = tokenizer.eos_token_id
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    for text in texts:
        if not text or not text.strip():
            continue
        ids = bos + tokenizer(text, add_special_tokens=False)["input_ids"] + ([eos] if eos is not None else [])
        for i in range(0, len(ids), max_length):
            piece = ids[i:i + max_length]
            if len(piece) < 2:
                continue
            prep.examples.append({"input_ids": piece, "labels": list(piece)})
            prep.tokens += len(piece)
            prep.trained_tokens += len(piece)
    return prep


def pack(examples: list[dict[str, list[int]]], max_length: int, packing: bool) -> Any:
    """A datasets.Dataset of rows: packed (bfd) with seq_lengths, or one sample per row."""
    from datasets import Dataset

    ds = Dataset.from_list(examples) if examples else Dataset.from_dict({"input_ids": [], "labels": []})
    if not packing:
        return ds.map(lambda ex: {"seq_lengths": [len(ex["input_ids"])]})
    from trl.data_utils import pack_dataset

    return pack_dataset(ds, max_length, strategy="bfd")


def ordered(ds: Any, epochs: int, seed: int) -> Any:
    """`epochs` passes over the rows, each in its own seeded order, as one dataset read front to back."""
    from datasets import concatenate_datasets

    parts = []
    for e in range(epochs):
        order = list(range(len(ds)))
        random.Random(seed * 1000 + e).shuffle(order)
        parts.append(ds.select(order))
    return concatenate_datasets(parts) if len(parts) > 1 else parts[0]


def plan_steps(n_rows: int, rows_per_step: int, epochs: float, max_steps: int | None) -> tuple[int, int]:
    """(optimizer steps, passes over the data to lay out) for n_rows packed rows."""
    if n_rows == 0:
        return 0, 0
    steps = max_steps or max(math.ceil(epochs * n_rows / rows_per_step), 1)
    return steps, max(math.ceil(steps * rows_per_step / n_rows), 1)
