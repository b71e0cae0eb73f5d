"""Leakage: an eval question (or paraphrase) that is also, nearly word for word, a training prompt.

A question leaks when the Jaccard overlap of its token n-grams with those of
one training prompt (a user turn of a `train` row) reaches `threshold`.
Jaccard, not containment: template questions share their frame ("X的返回值是什么？"
for X and for Y, a section and its sub-section) and are not the same question.
Tokens are characters for Chinese and words for English
(infuse.operators.common.tokens), so one threshold serves both. An inverted index over
the training n-grams keeps it linear.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from infuse.operators.evaluate.questions import Item
from infuse.operators.common.tokens import ngrams, tokens


@dataclass
class Leak:
    item_id: str
    question: str
    train_id: str
    train_prompt: str
    overlap: float

    def line(self) -> str:
        return (f"{self.item_id} {self.question[:80]!r} ~ train {self.train_id} {self.train_prompt[:80]!r} "
                f"(n-gram Jaccard {self.overlap:.2f})")


class LeakageError(ValueError):
    """Eval questions found in the training data: the scores would measure memorised prompts."""

    def __init__(self, leaks: list[Leak], n: int, threshold: float) -> None:
        self.leaks = leaks
        lines = "\n".join(f"  - {lk.line()}" for lk in leaks[:50])
        more = f"\n  … and {len(leaks) - 50} more" if len(leaks) > 50 else ""
        super().__init__(f"{len(leaks)} eval question(s) appear in the training data ({n}-gram Jaccard >= "
                         f"{threshold}):\n{lines}{more}\nremove them from the train split (or the eval file), or "
                         f"set steps.evaluate.leakage.action: warn")


def prompts_of(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(row id, user turn text) for every user turn of the training rows."""
    out = []
    for r in rows:
        for m in r.get("messages") or []:
            if m.get("role") == "user" and m.get("content"):
                out.append((r.get("sample_id") or "", m["content"]))
    return out


def find_leaks(items: list[Item], train_prompts: list[tuple[str, str]], n: int = 3,
               threshold: float = 0.9) -> list[Leak]:
    index: dict[tuple[str, ...], list[int]] = defaultdict(list)
    sizes = []
    for j, (_, text) in enumerate(train_prompts):
        grams = set(ngrams(tokens(text), n))
        sizes.append(len(grams))
        for g in grams:
            index[g].append(j)
    leaks = []
    for it in items:
        grams = set(ngrams(tokens(it.question), n))
        if not grams:
            continue
        hits: Counter[int] = Counter()
        for g in grams:
            hits.update(index.get(g, ()))
        if not hits:
            continue
        j, overlap = max(((j, c / (len(grams) + sizes[j] - c)) for j, c in hits.items()),
                         key=lambda kv: (kv[1], -kv[0]))
        if overlap >= threshold:
            tid, text = train_prompts[j]
            leaks.append(Leak(it.item_id, it.question, tid, text, round(overlap, 4)))
    return leaks
