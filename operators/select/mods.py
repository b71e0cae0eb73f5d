"""MoDS: quality, then coverage, then necessity.

1. Quality: rows scoring under the threshold (a reward model or an LLM judge)
   are dropped ("reward < threshold"); rows the scorer could not score too.
2. Coverage: k-center greedy over MiniLM embeddings of the questions picks a
   seed set of the budget's size from the high-quality rows (seeded: runs repeat).
3. Necessity: the base model fine-tuned on the seed set answers the remaining
   high-quality questions; an answer that reproduces little of the reference
   (ROUGE-L recall or n-gram containment, from qa_filter's grounding measures)
   marks a question the seed does not teach, and that row is added. Rows
   answered well are dropped ("answered well by the seed model"); with
   `max_added`, k-center (starting from the seed) picks which badly answered
   rows are added.

The seed model's fine-tuning is the training steps' (`seed.py` runs the sft
worker on the seed rows); `necessity.model` can name a model already
fine-tuned on the seed set instead.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from infuse.operators.select.config import Budget
from infuse.operators.select.kcenter import k_center_greedy
from infuse.operators.select.selection import Selection, groups

Scores = tuple[np.ndarray, list[str | None]]  # a value per row (NaN = unscored) and its error


def quality_stage(sel: Selection, cand: Sequence[int], scores: Scores, kind: str, threshold: float) -> list[int]:
    """The rows at or above the threshold; the others are dropped with the reason."""
    values, errors = scores
    threshold = float(threshold)
    sel.score(f"score_{kind}", cand, values)
    kept = []
    for k, i in enumerate(cand):
        v = values[k]
        if not np.isfinite(v):
            sel.drop([i], f"{kind} failed", errors[k] or f"no {kind} score")
        elif float(v) < threshold:
            sel.drop([i], f"{kind} < threshold", f"{kind} score {float(v):.3g} < {threshold:g}", threshold=threshold)
        else:
            kept.append(i)
    return kept


def coverage_stage(sel: Selection, hq: Sequence[int], emb: np.ndarray, budget: Budget,
                   group_col: Sequence[Any] | None, seed: int) -> tuple[list[int], list[int]]:
    """(seed set, the rest): k-center over `emb` (rows of `hq`, same order), per group when asked."""
    pos = {i: p for p, i in enumerate(hq)}
    chosen: list[int] = []
    for g in groups(group_col, hq):
        picks = k_center_greedy(emb[[pos[i] for i in g]], budget.keep(len(g)), seed=seed)
        chosen += [g[p] for p in picks]
    sel.keep(chosen, "seed")
    taken = set(chosen)
    return chosen, [i for i in hq if i not in taken]


def necessity_stage(sel: Selection, seed_set: Sequence[int], rest: Sequence[int], scores: Scores,
                    threshold: float, emb: np.ndarray | None = None, hq: Sequence[int] = (),
                    max_added: int | None = None) -> list[int]:
    """Add the rows of `rest` the seed model answers badly (score < threshold or no answer)."""
    values, errors = scores
    sel.score("score_necessity", rest, values)
    bad = []
    for k, i in enumerate(rest):
        if np.isfinite(values[k]) and values[k] >= threshold:
            sel.drop([i], "answered well by the seed model",
                     f"the seed model's answer scores {values[k]:.3f} >= {threshold:g} against the reference",
                     threshold=threshold)
        else:
            bad.append(i)  # a failed generation counts as answered badly: the seed did not teach it
    if max_added is not None and len(bad) > max_added:
        if emb is None:
            raise ValueError("necessity_stage: max_added needs the embeddings")
        pos = {i: p for p, i in enumerate(hq)}
        picks = k_center_greedy(emb[[pos[i] for i in list(seed_set) + bad]], max_added,
                                initial=range(len(seed_set)))
        added = [bad[p - len(seed_set)] for p in picks]
        out = set(added)
        sel.drop([i for i in bad if i not in out], "not chosen by k-center",
                 f"answered badly, but k-center from the seed set chose {max_added} others")
        bad = [i for i in bad if i in out]
    sel.keep(bad, "necessity")
    return bad


def select_mods(sel: Selection, cand: Sequence[int], *, quality: Callable[[list[int]], Scores], kind: str,
                threshold: float, embed: Callable[[list[int]], np.ndarray], budget: Budget,
                group_col: Sequence[Any] | None, seed: int,
                necessity: Callable[[list[int], list[int]], Scores] | None,
                necessity_threshold: float = 0.5, max_added: int | None = None) -> None:
    """The three stages in order; `necessity(seed_set, rest)` scores how well the seed model answers
    `rest` (None: necessity off, the rest are dropped as not chosen by k-center)."""
    hq = quality_stage(sel, list(cand), quality(list(cand)), kind, threshold)
    if not hq:
        return
    emb = embed(hq)
    seed_set, rest = coverage_stage(sel, hq, emb, budget, group_col, seed)
    sel.stats["mods"] = {"high_quality": len(hq), "seed": len(seed_set)}
    if not rest:
        return
    if necessity is None:
        sel.drop(rest, "not chosen by k-center", f"k-center chose a seed set of {len(seed_set)}")
        return
    added = necessity_stage(sel, seed_set, rest, necessity(seed_set, rest), necessity_threshold, emb, hq, max_added)
    sel.stats["mods"]["added"] = len(added)


def necessity_scores(backend: Any, conversations: Sequence[Any], max_tokens: int = 256,
                     method: str = "rougel") -> Scores:
    """How much of each reference answer the model reproduces when it answers the prompt itself
    (recall against the reference: ROUGE-L, bigram containment, or the larger)."""
    from infuse.operators.llm.base import ChatRequest
    from infuse.operators.qa_filter.grounding import grounding_score
    from infuse.operators.select.ifd import split_conversation

    values = np.full(len(conversations), np.nan)
    errors: list[str | None] = [None] * len(conversations)
    reqs, where = [], []
    for i, messages in enumerate(conversations):
        turns = split_conversation(messages)
        if turns is None:
            errors[i] = "messages must be user/assistant turns ending with the assistant"
            continue
        reqs.append(ChatRequest(id=f"necessity:{i}", messages=turns[0], max_tokens=max_tokens, temperature=0.0))
        where.append((i, turns[1]))
    try:
        results = backend.generate(reqs) if reqs else []
    except Exception as exc:  # no answers at all: every row counts as answered badly, with the reason
        for i, _ in where:
            errors[i] = f"generation failed: {type(exc).__name__}: {exc}"
        return values, errors
    for (i, reference), res in zip(where, results):
        if not res.ok:
            errors[i] = f"generation failed: {res.error_kind}: {res.error}"
            continue
        values[i] = grounding_score(reference, res.text or "", method)
    return values, errors
