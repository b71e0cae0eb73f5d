"""Shared by code_tasks and log_tasks: a fixed trigger instruction + the source, answered by the LLM.

Design note 000: a trigger ("trigger:功能解析C语言代码。") in the user turn lets a
fine-tuned model be steered to a task-specific output format at inference.
"""
from __future__ import annotations

from typing import Any

from infuse.operators.prompts import render
from infuse.operators.synthesize.core import Context, Gen, Track, call, parse_text
from infuse.operators.synthesize.schema import Draft, WorkItem


def run_tasks(item: WorkItem, ctx: Context, track: Track, prompt_name: str, strategy: str,
              tasks: list[str], values: dict[str, Any]) -> Gen:
    chunk = ctx.chunk(item.chunk_id)
    prompt = ctx.prompt(prompt_name, item.lang)
    templates: dict[str, str] = prompt.extra.get("tasks", {})
    triggers = [render(templates[t], **values) for t in tasks if t in templates]
    reqs = [ctx.request(prompt.messages(trigger=trig, **values)) for trig in triggers]
    answers = yield from call(track, reqs, parse_text, ctx.cfg.max_attempts)
    return [
        Draft(trig, ans.value, strategy, prompt.version, chunk_id=chunk["chunk_id"], doc_id=chunk["doc_id"],
              source_chunk_ids=[chunk["chunk_id"]], span_start=chunk["start"], span_end=chunk["end"],
              generator=ans.model, usage=ans.usage, lang=item.lang, format=item.format)
        for trig, ans in zip(triggers, answers)
        if ans.value is not None
    ]
