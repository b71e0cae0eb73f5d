"""identity (no LLM): self-cognition samples naming the fine-tuned model and its author.

The name and author are given per language (`name: {zh: 莲花助手, en: LotusBot}`) so a Chinese
sample never reads "我是the LotusDB team开发的"; a plain string serves every language.
Its items come from the recipe's `synthesize.identity` (one per language), not from any document.
"""
from __future__ import annotations

from infuse.operators.prompts import load_prompt, render
from infuse.operators.synthesize.config import SynthConfig
from infuse.operators.synthesize.core import Context, ItemFailure, Track
from infuse.operators.synthesize.schema import Draft, WorkItem
from infuse.operators.synthesize.strategy import DocSource, Strategy, Template

PROMPT = "identity"


class Identity(Template, Strategy):
    name = "identity"
    order = 150
    prompts = (PROMPT,)

    def plan(self, cfg: SynthConfig, source: DocSource) -> list[WorkItem]:
        return []  # named for a format it takes nothing: its items are standalone

    def standalone_items(self, cfg: SynthConfig) -> list[WorkItem]:
        if not cfg.identity.enabled:
            return []
        return [self.item(cfg, "", "", lang, "", {"key": f"identity:{lang}"},
                          expected=len(load_prompt(PROMPT, lang).extra.get("pairs") or []))
                for lang in cfg.identity.langs]

    def make(self, item: WorkItem, ctx: Context, track: Track) -> list[Draft]:
        opts = ctx.cfg.identity
        name, author = opts.value("name", item.lang), opts.value("author", item.lang)
        if not name or not author:
            raise ItemFailure("config_error", f"identity needs synth.identity.name and .author for {item.lang}")
        prompt = ctx.prompt(PROMPT, item.lang)
        pairs = prompt.extra.get("pairs") or []
        return [Draft(render(p["q"], name=name, author=author), render(p["a"], name=name, author=author),
                      "identity", prompt.version, lang=item.lang, format="")
                for p in pairs]
