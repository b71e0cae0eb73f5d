"""identity (no LLM): self-cognition samples naming the fine-tuned model and its author."""
from __future__ import annotations

from infuse.operators.prompts import render
from infuse.operators.synth.core import Context, ItemFailure, Track
from infuse.operators.synth.schema import Draft, WorkItem

PROMPT = "identity"


def make(item: WorkItem, ctx: Context, track: Track) -> list[Draft]:
    opts = ctx.cfg.identity
    if not opts.name or not opts.author:
        raise ItemFailure("config_error", "identity needs synth.identity.name and synth.identity.author")
    prompt = ctx.prompt(PROMPT, item.lang)
    pairs = prompt.extra.get("pairs") or []
    return [Draft(render(p["q"], name=opts.name, author=opts.author), render(p["a"], name=opts.name, author=opts.author),
                  "identity", prompt.version, lang=item.lang, format="")
            for p in pairs]
