"""The preference report: what became of the training questions and the sampled replies, with example pairs."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from infuse.operators.common.base import Reject
from infuse.operators.preference.pairs import Candidate


@dataclass
class PromptCounts:
    """How many training rows came in, how many could be prompts (fact questions among them), how many were
    sampled."""

    rows: int
    prompts: int
    facts: int
    sampled: int


@dataclass
class PreferenceReport:
    rows_in: int
    kept: int
    markdown: str
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)


def _short(text: str | None, n: int = 160) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _markdown(n: PromptCounts, verdicts: Counter, reasons: Counter, pairs: list[dict[str, Any]],
              user: list[dict[str, Any]], replies: int) -> str:
    by_strict = sum(p["rejected_strict"] is not None for p in pairs)
    return (f"{n.prompts} training questions can be preference prompts ({n.facts} fact questions with a gold short "
            f"answer; {reasons.get('eval_prompt', 0)} held out as eval questions); {n.sampled} were sampled, "
            f"{replies} replies: "
            + ", ".join(f"{v} {k}" for k, v in sorted(verdicts.items())) + f". **{len(pairs)} generated pairs**"
            + f" ({by_strict} with a reply that fails the strict score as rejected)"
            + (f" and {len(user)} user pairs" if user else "") + ".")


def _examples(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"question": _short(p["prompt"][-1]["content"], 100), "chosen": _short(p["chosen"]),
             "rejected": _short(p["rejected"]), "from": p["rejected_from"],
             "rejected_strict": p.get("rejected_strict"), "rejected_grounding": p["rejected_grounding"]}
            for p in pairs[:8]]


def _counts(n: PromptCounts, verdicts: Counter, reasons: Counter, pairs: int, user: int,
            replies: int) -> list[dict[str, Any]]:
    return [{"what": k, "count": v} for k, v in
            [("training rows", n.rows), ("prompts", n.prompts), ("fact prompts", n.facts),
             ("prompts sampled", n.sampled), ("replies sampled", replies),
             *[(f"replies {k}", v) for k, v in sorted(verdicts.items())],
             *[(f"dropped: {k}", v) for k, v in sorted(reasons.items())], ("generated pairs", pairs),
             ("user pairs", user)]]


def preference_report(n: PromptCounts, candidates: list[Candidate], pairs: list[dict[str, Any]],
                      user: list[dict[str, Any]], rejects: list[Reject]) -> PreferenceReport:
    """Counts, the summary line, example pairs (generated first) and every drop reason."""
    verdicts = Counter(c.verdict for c in candidates)
    reasons = Counter(r.reason for r in rejects)
    return PreferenceReport(
        rows_in=n.sampled + len(user) + sum(1 for r in rejects if r.reason.startswith("malformed")),
        kept=len(pairs) + len(user),
        markdown=_markdown(n, verdicts, reasons, pairs, user, len(candidates)),
        tables={"examples": _examples(pairs + user),
                "counts": _counts(n, verdicts, reasons, len(pairs), len(user), len(candidates))},
        stats={"prompts": n.prompts, "fact_prompts": n.facts, "sampled": n.sampled, "replies": dict(verdicts),
               "pairs": len(pairs), "strict_pairs": sum(p["rejected_strict"] is not None for p in pairs),
               "user_pairs": len(user), "dropped": dict(reasons)})
