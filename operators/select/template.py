"""The chat template IFD renders prompts with: chosen in this one function.

IFD conditions the answer on the prompt exactly as the model will see it in
training, so the template must be the one training uses. Until the shared
template module of the training steps is merged, this uses the tokenizer's own
template, or the packaged Gemma one by name; point this function at the shared
module (`resolve(tokenizer, model_type, name).source`) when it lands.
"""
from __future__ import annotations

from typing import Any


class TemplateError(ValueError):
    """No usable chat template for the scorer."""


def scorer_chat_template(tokenizer: Any, name: str | None = None) -> str:
    """The Jinja source of the scorer's chat template: `name` ('gemma', or a Jinja string), else its own."""
    if name:
        if "{%" in name or "{{" in name:
            return name
        if name == "gemma":
            from infuse.operators.common.models import GEMMA_CHAT_TEMPLATE

            return GEMMA_CHAT_TEMPLATE
        raise TemplateError(f"chat template {name!r} is not available to select yet; use the model's own template "
                            f"(leave it empty), 'gemma', or a Jinja template string")
    own = getattr(tokenizer, "chat_template", None)
    if isinstance(own, dict):  # several named templates: the default one
        own = own.get("default")
    if not own:
        raise TemplateError("the scorer's tokenizer has no chat template; set steps.select.scorer.chat_template")
    return own
