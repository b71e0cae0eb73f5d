"""Is an answer supported by its source text? Cheap lexical scores, no model.

Tokens are single CJK characters and Latin words/numbers, so one measure
works for Chinese and English. `containment` is the share of the answer's
token bigrams found in the source: 1.0 for copied text, near 0 for unrelated
text, in between for paraphrases. `rouge_l` is the LCS of tokens over the
answer length (ROUGE-L recall of the answer against the source).
"""
from __future__ import annotations

from infuse.operators.common.tokens import ngrams as _ngrams
from infuse.operators.common.tokens import tokens


def containment(answer: str, source: str, n: int = 2) -> float:
    grams = _ngrams(tokens(answer), n)
    if not grams:
        return 0.0
    src = set(_ngrams(tokens(source), n))
    return sum(1 for g in grams if g in src) / len(grams)


def rouge_l(answer: str, source: str, max_tokens: int = 3000) -> float:
    a = tokens(answer)[:max_tokens]
    s = tokens(source)[:max_tokens]
    if not a or not s:
        return 0.0
    # LCS by rows, O(len(a) * len(s)) time, O(len(s)) memory
    prev = [0] * (len(s) + 1)
    for x in a:
        cur = [0] * (len(s) + 1)
        for j, y in enumerate(s, 1):
            cur[j] = prev[j - 1] + 1 if x == y else (prev[j] if prev[j] >= cur[j - 1] else cur[j - 1])
        prev = cur
    return prev[-1] / len(a)


def grounding_score(answer: str, source: str, method: str = "ngram", n: int = 2) -> float:
    if method == "ngram":
        return containment(answer, source, n)
    if method == "rougel":
        return rouge_l(answer, source)
    return max(containment(answer, source, n), rouge_l(answer, source))
