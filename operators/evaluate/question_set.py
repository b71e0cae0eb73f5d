"""One run's question set: mix's held-out rows, reworded variants of its domain items, the user's own file.

Paraphrases cost an LLM call per domain item: they are kept in a file of the
step's work dir as soon as they exist, so a run killed later (while the models
answer) does not ask for them again.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infuse.operators.common.base import Reject
from infuse.operators.evaluate.config import EvaluateConfig
from infuse.operators.evaluate.questions import Item, from_eval_rows, paraphrase, read_user_questions
from infuse.operators.evaluate.services import Progress
from infuse.operators.llm import LLMBackend


def question_set(eval_rows: list[dict[str, Any]] | None, o: EvaluateConfig, cache: Path,
                 synth: Callable[[], LLMBackend], progress: Progress) -> tuple[list[Item], list[Reject]]:
    """Domain and general items of the eval split (None: the run has none), the paraphrases of the domain items
    (asked of `synth()` once, then read from `cache`), then the user's questions."""
    items, rejects = ([], []) if eval_rows is None else from_eval_rows(eval_rows, o.max_domain_items,
                                                                        o.max_general_items)
    domain = [it for it in items if it.group == "domain"]
    if o.paraphrases and domain:
        para, prej = _paraphrases(domain, o, cache, synth, progress)
        items, rejects = items + para, rejects + prej
    if o.user_questions:
        user, urej = read_user_questions(o.user_questions)
        items, rejects = items + user, rejects + urej
    if not items:
        raise ValueError("evaluate: no question to ask (the eval split has no domain or general rows, and no "
                         "user_questions file is set)")
    return items, rejects


def _paraphrases(domain: list[Item], o: EvaluateConfig, cache: Path, synth: Callable[[], LLMBackend],
                 progress: Progress) -> tuple[list[Item], list[Reject]]:
    if cache.is_file():
        saved = json.loads(cache.read_text(encoding="utf-8"))
        return [Item(**r) for r in saved["items"]], [Reject(**r) for r in saved["rejects"]]
    backend = synth()
    with progress(len(domain), "evaluate: paraphrases", "items") as bar:
        para, rejects = paraphrase(domain, backend, o.paraphrases, o.paraphrase_max_tokens, seed=o.seed)
        bar.update(len(domain))
    del backend  # a local model leaves memory before the answering models load
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps({"items": [p.row() for p in para],
                               "rejects": [{"id": r.id, "reason": r.reason, "message": r.message, "detail": r.detail}
                                           for r in rejects]}, ensure_ascii=False), encoding="utf-8")
    tmp.replace(cache)
    return para, rejects
