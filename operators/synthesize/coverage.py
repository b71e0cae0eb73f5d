"""Fact coverage: which samples state which fact, and how evenly the facts are covered.

WHY: facts are learned in proportion to how often, and how variously, they are stated (Ovadia et al.), and
the whole corpus is learned best when every fact gets about the same share (Mecklenburg et al., arXiv
2404.00213: fact-based rather than token-based scaling). The `facts` strategy knows its facts; an LLM
strategy (qa, atomic_facts, rewrite, summary, raft) writes free text. A sample of another strategy whose
answer states a fact's short value, from the same document, is tagged with that fact (`meta.fact_ids`), so
the report can count every fact's samples, whoever wrote them.
"""
from __future__ import annotations

import json
import statistics
from collections import defaultdict
from typing import Any

from infuse.operators.synthesize.schema import meta_of
from infuse.operators.common.tokens import tokens


def _states(answer_tokens: str, value: str) -> bool:
    """The value, as a whole token sequence, is in the answer ("7420" in "port 7420", not in "74201")."""
    v = " ".join(tokens(value))
    return bool(v) and f" {v} " in answer_tokens


def _is_facts(row: dict[str, Any]) -> bool:
    return (row.get("strategy") or "").startswith("facts")


def _known_facts(rows: list[dict[str, Any]]) -> tuple[dict[str, dict[str, str]], dict[str, int]]:
    """({doc_id: {fact_id: short value}}, samples per fact) from the `facts` samples."""
    facts: dict[str, dict[str, str]] = defaultdict(dict)
    count: dict[str, int] = defaultdict(int)
    for r in rows:
        m = meta_of(r.get("meta"))
        if _is_facts(r) and m.get("fact_id"):
            count[m["fact_id"]] += 1
            if m.get("short"):
                facts[r.get("doc_id") or ""].setdefault(m["fact_id"], m["short"])
    return facts, count


def _stated(row: dict[str, Any], facts: dict[str, str]) -> list[str]:
    """The ids of the facts whose short value the row's assistant turns state."""
    said = " " + " ".join(tokens("\n".join(x["content"] for x in row.get("messages") or []
                                          if x.get("role") == "assistant"))) + " "
    return sorted(fid for fid, value in facts.items() if _states(said, value))


def tag_facts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Tag (in place) each non-`facts` sample with the facts of its document that its answers state, and return
    the coverage: samples per fact (all strategies), and how many other samples state a fact."""
    facts, count = _known_facts(rows)
    tagged = 0
    for r in rows:
        if _is_facts(r) or not facts.get(r.get("doc_id") or ""):
            continue
        ids = _stated(r, facts[r["doc_id"]])
        if ids:
            m = meta_of(r.get("meta"))
            m["fact_ids"] = ids
            r["meta"] = json.dumps(m, ensure_ascii=False, sort_keys=True)
            tagged += 1
            for fid in ids:
                count[fid] += 1
    per = sorted(count.values())
    return {"facts": len(per), "samples_per_fact": {"min": per[0], "median": statistics.median(per),
                                                    "max": per[-1]} if per else None,
            "other_samples_stating_a_fact": tagged}
