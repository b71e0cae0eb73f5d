"""Shared by code_tasks and log_tasks: a fixed trigger instruction + the source, answered by the LLM.

Design note 000: a trigger ("trigger:功能解析C语言代码。") in the user turn lets a
fine-tuned model be steered to a task-specific output format at inference.
"""
from __future__ import annotations

from typing import Any

from infuse.operators.prompts import render
from infuse.operators.synthesize.config import SynthConfig
from infuse.operators.synthesize.core import Context, Gen, Track, call, parse_text
from infuse.operators.synthesize.schema import Draft, WorkItem
from infuse.operators.synthesize.strategy import Cost, Pricer, Strategy


class TriggerStrategy(Strategy):
    """One request per task the recipe names; the prompt's `tasks` map each to its trigger."""

    def tasks(self, cfg: SynthConfig) -> list[str]:
        raise NotImplementedError

    def values(self, item: WorkItem, chunk: dict[str, Any], cfg: SynthConfig) -> dict[str, Any]:
        """What the prompt and the triggers are rendered with."""
        raise NotImplementedError

    def estimate(self, item: WorkItem, price: Pricer) -> Cost:
        req = len(self.tasks(price.cfg))
        return Cost(req, req * (price.system(self.name) + price.src), req * price.gen(price.cfg.answer_target_chars),
                    req)

    def run(self, item: WorkItem, ctx: Context, track: Track) -> Gen:
        chunk = ctx.chunk(item.chunk_id)
        values = self.values(item, chunk, ctx.cfg)
        prompt = ctx.prompt(self.name, item.lang)
        templates: dict[str, str] = prompt.extra.get("tasks", {})
        triggers = [render(templates[t], **values) for t in self.tasks(ctx.cfg) if t in templates]
        reqs = [ctx.request(prompt.messages(trigger=trig, **values)) for trig in triggers]
        answers = yield from call(track, reqs, parse_text, ctx.cfg.max_attempts)
        return [
            Draft(trig, ans.value, self.name, prompt.version, chunk_id=chunk["chunk_id"], doc_id=chunk["doc_id"],
                  source_chunk_ids=[chunk["chunk_id"]], span_start=chunk["start"], span_end=chunk["end"],
                  generator=ans.model, usage=ans.usage, lang=item.lang, format=item.format)
            for trig, ans in zip(triggers, answers)
            if ans.value is not None
        ]
