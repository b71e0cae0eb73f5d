"""log_tasks: key-information extraction and summary/triage of a log chunk, answered by the LLM."""
from __future__ import annotations

from typing import Any

from infuse.operators.synthesize.config import SynthConfig
from infuse.operators.synthesize.schema import WorkItem
from infuse.operators.synthesize.strategies.code_tasks import fenced
from infuse.operators.synthesize.trigger import TriggerStrategy

PROMPT = "log_tasks"


class LogTasks(TriggerStrategy):
    name = "log_tasks"
    order = 40
    prompts = (PROMPT,)

    def tasks(self, cfg: SynthConfig) -> list[str]:
        return list(cfg.log.tasks)

    def values(self, item: WorkItem, chunk: dict[str, Any], cfg: SynthConfig) -> dict[str, Any]:
        return {"log": fenced(chunk["text"])}  # fenced: the log lines are never read as the question's prose
