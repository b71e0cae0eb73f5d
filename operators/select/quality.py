"""Quality scores for MoDS: a local reward model, or an LLM judge through the synthesis backends.

A row that cannot be scored (a judge that fails or answers something
unreadable) gets NaN and its error, so the caller can reject it with the
reason; it never stops the run. Scores are floats and the threshold is a float
(the reference code compared a string threshold).
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from infuse.operators.select.ifd import resolve_device, resolve_dtype, split_conversation

_NUMBER = re.compile(r'"?score"?\s*[:：]\s*"?(-?\d+(?:\.\d+)?)')


def reward_scores(model_dir: str, conversations: Sequence[Any], batch_size: int = 8, device: str = "auto",
                  max_length: int = 2048) -> tuple[np.ndarray, list[str | None]]:
    """The reward model's scalar (logit 0) for each conversation; its own chat template when it has one,
    else the (question, answer) text pair, as cross-encoder reward models read them."""
    dev = resolve_device(device)
    tok, model = _load_reward_model(model_dir, dev)
    scores = np.full(len(conversations), np.nan)
    errors: list[str | None] = [None] * len(conversations)
    items = _reward_inputs(tok, conversations, errors)
    for s in range(0, len(items), batch_size):
        batch = items[s:s + batch_size]
        for (i, _), v in zip(batch, _reward_logits(tok, model, [t for _, t in batch], dev, max_length)):
            scores[i] = float(v)
    return scores, errors


def _load_reward_model(model_dir: str, dev: str) -> tuple[Any, Any]:
    """(tokenizer, model) in eval mode on `dev`, padding on the right with a pad token set."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=resolve_dtype("auto", dev))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    tok.padding_side = "right"
    model.to(dev).eval()
    return tok, model


def _reward_inputs(tok: Any, conversations: Sequence[Any], errors: list[str | None]) -> list[tuple[int, Any]]:
    """(row, rendered conversation or (question, answer) pair) for every well-formed row; the others get
    their error in `errors`."""
    items: list[tuple[int, Any]] = []
    for i, messages in enumerate(conversations):
        turns = split_conversation(messages)
        if turns is None:
            errors[i] = "messages must be user/assistant turns ending with the assistant"
            continue
        prompt, answer = turns
        if tok.chat_template:
            items.append((i, tok.apply_chat_template(prompt + [{"role": "assistant", "content": answer}],
                                                     tokenize=False)))
        else:
            items.append((i, ("\n".join(m["content"] for m in prompt if m["role"] == "user"), answer)))
    return items


def _reward_logits(tok: Any, model: Any, texts: list[Any], dev: str, max_length: int) -> np.ndarray:
    """Logit 0 of one batch (texts all rendered strings, or all text pairs)."""
    import torch

    if isinstance(texts[0], tuple):
        enc = tok([q for q, _ in texts], [a for _, a in texts], padding=True, truncation=True,
                  max_length=max_length, return_tensors="pt")
    else:
        enc = tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt",
                  add_special_tokens=False)
    with torch.inference_mode():
        return model(**{k: v.to(dev) for k, v in enc.items()}).logits[:, 0].float().cpu().numpy()


def parse_score(text: str | None) -> float | None:
    """The judge's score: from its JSON, else the first `score: N` in the text."""
    from infuse.operators.synthesize.jsonrepair import parse_json_loose

    try:
        value = parse_json_loose(text)
        if isinstance(value, dict) and "score" in value:
            score = float(value["score"])
            return score if math.isfinite(score) else None
    except Exception:  # unreadable JSON: look for the number itself
        pass
    m = _NUMBER.search(text or "")
    return float(m.group(1)) if m else None


def judge_scores(backend: Any, conversations: Sequence[Any], langs: Sequence[str] | None = None,
                 max_tokens: int = 64) -> tuple[np.ndarray, list[str | None]]:
    """A 1-10 score per conversation from an LLM judge, all requests in one batch."""
    from infuse.operators.llm.base import ChatRequest
    from infuse.operators.prompts import load_prompt

    scores = np.full(len(conversations), np.nan)
    errors: list[str | None] = [None] * len(conversations)
    reqs, where = [], []
    for i, messages in enumerate(conversations):
        turns = split_conversation(messages)
        if turns is None:
            errors[i] = "messages must be user/assistant turns ending with the assistant"
            continue
        question = "\n".join(m["content"] for m in turns[0] if m["role"] == "user")
        prompt = load_prompt("judge_quality", (langs[i] if langs else None) or "en")
        reqs.append(ChatRequest(id=f"quality:{i}", messages=prompt.messages(question=question, answer=turns[1]),
                                max_tokens=max_tokens, temperature=0.0, prefill='{"score": ', stop=["}"]))
        where.append(i)
    if not reqs:
        return scores, errors
    try:
        results = backend.generate(reqs)
    except Exception as exc:  # the backend itself failed: every row is unscored, with the reason
        for i in where:
            errors[i] = f"judge failed: {type(exc).__name__}: {exc}"
        return scores, errors
    for i, res in zip(where, results):
        if not res.ok:
            errors[i] = f"judge failed: {res.error_kind}: {res.error}"
            continue
        score = parse_score(res.text)
        if score is None:
            errors[i] = f"judge reply has no score: {(res.text or '')[:200]!r}"
        else:
            scores[i] = score
    return scores, errors
