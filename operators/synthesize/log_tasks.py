"""log_tasks: key-information extraction and summary/triage of a log chunk, answered by the LLM."""
from __future__ import annotations

from infuse.operators.synthesize.core import Context, Gen, Track
from infuse.operators.synthesize.schema import WorkItem
from infuse.operators.synthesize.code_tasks import fenced
from infuse.operators.synthesize.trigger import run_tasks

PROMPT = "log_tasks"


def run(item: WorkItem, ctx: Context, track: Track) -> Gen:
    chunk = ctx.chunk(item.chunk_id)
    values = {"log": fenced(chunk["text"])}  # fenced: the log lines are never read as the question's prose
    return (yield from run_tasks(item, ctx, track, PROMPT, "log_tasks", list(ctx.cfg.log.tasks), values))
