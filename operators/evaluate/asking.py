"""Every model's answers to its questions, scored, and its loss on the general items.

Answers are greedy and cost a model load and a generation each, so every
answer is kept in an item memo under what determines it (the model's content,
the served name, the backend settings, the length cap and the prompt): a kill,
or a rerun with more questions, asks only what was not answered yet. Failed
requests are not kept (asked again).
"""
from __future__ import annotations

from typing import Any

from infuse.operators.common.base import key_dump, stable_hash
from infuse.operators.evaluate import answer as ans
from infuse.operators.evaluate.config import EvaluateConfig
from infuse.operators.evaluate.metrics import degenerate, first_pass, score
from infuse.operators.evaluate.questions import Item
from infuse.operators.evaluate.services import Memo, Progress
from infuse.operators.llm import ChatResult

Prompts = dict[str, list[dict[str, str]]]  # item id -> the chat turns to send instead of the item's own


def ask_all(answerers: list[ans.Answerer], items: list[Item], rag_prompts: Prompts, rag_chunks: dict[str, list[str]],
            o: EvaluateConfig, memo: Memo, progress: Progress) -> list[dict[str, Any]]:
    """One `scores` row per (answerer, item): a +RAG answerer asks only the items retrieval has prompts for.
    The memo keeps exactly this run's answers once all are in."""
    jobs = [(a, [it for it in items if not a.rag or it.item_id in rag_prompts]) for a in answerers]
    scores: list[dict[str, Any]] = []
    keys: list[str] = []
    with progress(sum(len(its) for _, its in jobs), "evaluate: answers", "answers") as bar:
        for a, its in jobs:
            bar.update(0, model=a.name)
            results = answers(a, its, rag_prompts if a.rag else None, o, memo, keys, bar)
            scores += [scored(a, it, res, rag_chunks) for it, res in zip(its, results)]
    memo.finish(keys)
    return scores


def answers(a: ans.Answerer, its: list[Item], prompts: Prompts | None, o: EvaluateConfig, memo: Memo,
            keys: list[str], bar: Any) -> list[ChatResult]:
    """Greedy answers of one model, in item order: the kept ones, then the rest generated and kept as they
    finish. The memo keys of the items are added to `keys`."""
    served = o.served.get(a.name) or o.served.get(a.name.removesuffix("+rag"))
    setting = [a.model_id or a.path, served, key_dump(o.llm), o.max_new_tokens]
    its_keys = [_key(setting, (prompts or {}).get(it.item_id, it.prompt)) for it in its]
    keys += its_keys
    out = _kept(its, its_keys, memo)
    bar.update(len(out))
    todo = [i for i in range(len(its)) if i not in out]
    # vllm: one process per model (the GPU is whole for each, and freed), so one call; else in chunks kept as
    # they finish
    size = (len(todo) or 1) if o.llm.backend == "vllm" else max(8, 4 * o.llm.batch_size)
    for start in range(0, len(todo), size):
        part = todo[start:start + size]
        results = _generate(a, [its[i] for i in part], prompts, served, o, bar)
        out.update(zip(part, results))
        memo.put([(its_keys[i], {"text": r.text, "finish_reason": r.finish_reason}, None)
                  for i, r in zip(part, results) if r.ok])
    return [out[i] for i in range(len(its))]


def _key(setting: list[Any], prompt: list[dict[str, str]]) -> str:
    """The memo key of one answer: the model, served name, backend settings and length cap, and the prompt."""
    return stable_hash(["eval-answer.v1", *setting, prompt])[:32]


def _kept(its: list[Item], its_keys: list[str], memo: Memo) -> dict[int, ChatResult]:
    """The answers an earlier run kept, by item position."""
    out: dict[int, ChatResult] = {}
    for i, (it, k) in enumerate(zip(its, its_keys)):
        found = memo.get(k)
        if found is not None:
            out[i] = ChatResult(it.item_id, text=found[0]["text"], finish_reason=found[0]["finish_reason"])
    return out


def _generate(a: ans.Answerer, chunk: list[Item], prompts: Prompts | None, served: str | None, o: EvaluateConfig,
              bar: Any) -> list[ChatResult]:
    """New answers: with vllm in a process of their own (the GPU is freed when it ends), else in this one."""
    if o.llm.backend == "vllm":
        results = ans.isolated(ans.answer, a, chunk, o.llm, o.max_new_tokens, prompts, served)
        bar.update(len(results))
        return results
    return ans.answer(a, chunk, o.llm, o.max_new_tokens, prompts, served=served, on_batch=lambda n: bar.update(n))


def scored(a: ans.Answerer, it: Item, res: ChatResult, rag_chunks: dict[str, list[str]]) -> dict[str, Any]:
    """One `scores` row: scored on the answer's first pass (before it repeats a sentence); a flagged answer
    (empty, echo, repeat) scores strict 0 whatever it contains."""
    text = first_pass(res.text if res.ok else "")
    s = score(text, it.reference, it.aliases, it.question)
    flag = degenerate(text, it.question)
    if flag:
        s["strict"] = 0.0
    return {"model": a.name, "item_id": it.item_id, "group": it.group, "question": it.question,
            "reference": it.reference, "answer": res.text if res.ok else None,
            "error": None if res.ok else f"{res.error_kind}: {res.error}", **s, "flag": flag, "judge": None,
            "loss_sum": None, "loss_tokens": None, "doc_id": it.doc_id, "lang": it.lang,
            "rag_chunks": rag_chunks.get(it.item_id, []) if a.rag else [], "finish_reason": res.finish_reason}


def add_losses(answerers: list[ans.Answerer], items: list[Item], scores: list[dict[str, Any]],
               o: EvaluateConfig) -> None:
    """loss_sum and loss_tokens of every closed-book model's rows on the general items: the summed NLL of the
    reference answer given the question, the forgetting signal that needs no generation."""
    general = [it for it in items if it.group == "general"]
    if not general:
        return
    convs = [[*it.prompt, {"role": "assistant", "content": it.reference}] for it in general]
    device = o.llm.device if o.llm.backend == "transformers" else "auto"
    at = {(s["model"], s["item_id"]): s for s in scores}
    for a in answerers:
        if a.rag:
            continue
        losses = (ans.isolated(ans.token_loss, a.path, convs, device) if o.llm.backend == "vllm"
                  else ans.token_loss(a.path, convs, device))
        for it, (nll, n) in zip(general, losses):
            s = at.get((a.name, it.item_id))
            if s is not None and n:
                s["loss_sum"], s["loss_tokens"] = nll, n
