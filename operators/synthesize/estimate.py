"""estimate: what a plan's work items will cost, before any call.

`infuse plan RECIPE` prints `format_estimate(estimate(plan(...)))`. Each
strategy prices its own items (Strategy.estimate); the augmenters that apply
add theirs for every sample the strategy is expected to give.
"""
from __future__ import annotations

from typing import Any, Callable

from infuse.operators.common.lang import estimate_tokens
from infuse.operators.prompts import load_prompt
from infuse.operators.synthesize.config import SynthConfig
from infuse.operators.synthesize.core import rows_by_key
from infuse.operators.synthesize.schema import WorkItem
from infuse.operators.synthesize.strategy import Cost, Pricer, augmenters, strategy

COLUMNS = ("items", "requests", "prompt_tokens", "completion_tokens", "samples")


def estimate(items: list[WorkItem], cfg: SynthConfig, tokenizer_count: Callable[[str], int] | None = None,
             chunks: Any = None) -> dict[str, Any]:
    """Requests and tokens per strategy, without calling anything.

    Prompt tokens count the system prompt and the source text (from `chunks`
    when given, else ~text_chars of the item); completions assume the targets
    of the config (answer_target_chars, questions_per_chunk, k). Retries of
    malformed outputs are not included; `max_requests` bounds them.
    """
    chunk_rows = rows_by_key(chunks, "chunk_id") if chunks is not None else {}
    system = _SystemTokens(cfg, tokenizer_count)
    by: dict[str, dict[str, int]] = {}
    for it in items:
        source = chunk_rows[it.chunk_id]["text"] if it.chunk_id in chunk_rows else None
        cost = item_cost(it, Pricer(cfg, it, source, tokenizer_count, system))
        s = by.setdefault(it.strategy, dict.fromkeys(COLUMNS, 0))
        s["items"] += 1
        s["requests"] += cost.requests
        s["prompt_tokens"] += cost.prompt_tokens
        s["completion_tokens"] += cost.completion_tokens
        s["samples"] += cost.samples
    total = {k: sum(v[k] for v in by.values()) for k in COLUMNS}
    return {
        **total,
        "max_requests": total["requests"] * cfg.max_attempts,
        "max_completion_tokens": total["requests"] * cfg.max_tokens,
        "by_strategy": dict(sorted(by.items())),
        "tokens_from": "tokenizer" if tokenizer_count else "chars (1 token ~ 1.5 CJK chars / 4 other chars)",
    }


def item_cost(item: WorkItem, price: Pricer) -> Cost:
    """The item's own cost, plus that of the augmenters applying to its samples."""
    found = strategy(item.strategy)
    cost = found.estimate(item, price) if found is not None else Cost(samples=item.expected_samples)
    base = cost.samples
    for aug in augmenters():
        if base and aug.applies(price.cfg, item.strategy):
            cost.add(aug.estimate(price, base))
    return cost


class _SystemTokens:
    """Tokens of a prompt's fixed text, per (prompt, language), counted once."""

    def __init__(self, cfg: SynthConfig, counter: Callable[[str], int] | None) -> None:
        self.cfg, self.counter = cfg, counter
        self.seen: dict[tuple[str, str], int] = {}

    def __call__(self, name: str, lang: str) -> int:
        if (name, lang) not in self.seen:
            overrides = self.cfg.prompt_overrides
            p = load_prompt(name, lang, overrides.get(f"{name}.{lang}") or overrides.get(name))
            text = p.fixed_text()
            self.seen[(name, lang)] = self.counter(text) if self.counter else estimate_tokens(text)
        return self.seen[(name, lang)]


def format_estimate(est: dict[str, Any]) -> str:
    """A plain-text table for `infuse plan`."""
    lines = [f"{'strategy':<18}{'items':>8}{'requests':>10}{'prompt tok':>12}{'compl. tok':>12}{'samples':>9}"]
    for name, s in est["by_strategy"].items():
        lines.append(f"{name:<18}{s['items']:>8}{s['requests']:>10}{s['prompt_tokens']:>12}"
                     f"{s['completion_tokens']:>12}{s['samples']:>9}")
    lines.append(f"{'total':<18}{est['items']:>8}{est['requests']:>10}{est['prompt_tokens']:>12}"
                 f"{est['completion_tokens']:>12}{est['samples']:>9}")
    lines.append(f"at most {est['max_requests']} requests with retries; completion tokens capped at "
                 f"{est['max_completion_tokens']}; tokens from {est['tokens_from']}")
    return "\n".join(lines)
