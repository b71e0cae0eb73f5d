"""merge: the newest trained model folded into its base, one plain model directory.

Reads every model before it (models()) and merges the last: dpo's when it
ran, else sft's. LoRA/DoRA merge into a bf16 load of the base; QLoRA into a
bf16 reload of the base, never the 4-bit weights; hybrid into the updated base
it carries. The result loads with plain transformers, `transformers serve` and
vLLM (tokenizer, chat template and generation config included).
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from infuse.operators.common.base import runtime
from infuse.operators.common.models import model_dir
from infuse.operators.train.card import read_card
from infuse.operators.train.merge import merge_model
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, model, models


class MergeOptions(StepOptions):
    enabled: bool = runtime(False, description="off by default, like sft: turn both on to get a merged model")
    dtype: Literal["bfloat16", "float16", "float32"] = Field("bfloat16", description="dtype of the merged weights")


class Merge(Step):
    name = "merge"
    stage = 120
    uses_model = True
    description = "merge the adapter into its base: a plain model for transformers, transformers serve and vLLM"
    inputs = (models(),)
    outputs = {"merged": model("merged weights + tokenizer with its chat template + card.json")}
    Options = MergeOptions

    def run(self, ctx: StepContext) -> StepOutput:
        src = ctx.input_dir(ctx.models()[-1])
        with ctx.dir_output("merged") as out:
            merged = merge_model(src, out.path, base_dir=_base(ctx, src), dtype=ctx.options.dtype)
            out.describe = f"merged {merged['merged_from']['method']} model ({ctx.options.dtype})"
        md = (f"Merged the **{merged['merged_from']['method']}** model ({merged['merged_from']['layout']}) into "
              f"{ctx.options.dtype} weights; chat template `{merged['template']['name']}`.\n\n"
              f"Chat with it:\n\n```python\nfrom transformers import pipeline\n"
              f"chat = pipeline('text-generation', model='{out.ref.path}')\n"
              f"print(chat([{{'role': 'user', 'content': 'Hello'}}], max_new_tokens=200)[0]['generated_text'])\n```")
        return StepOutput({"merged": out.ref}, [], StepReport(rows_in=1, kept=1, unit_in="model", unit_out="model",
                                                               markdown=md, stats={"card": merged}))


def _base(ctx: StepContext, src: Path) -> Path | str | None:
    """The base the model was trained on, as its card's `base.source` says: a model input of this step (cpt's,
    by its input name), or the recipe's model; None: the card's own base path."""
    source = (read_card(src) or {}).get("base", {}).get("source")
    if source and ctx.has(source):
        return ctx.input_dir(source)
    if source == "model":
        return model_dir(ctx.cfg["model"].get("path"))
    return None
