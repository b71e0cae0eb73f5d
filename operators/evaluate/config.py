"""Recipe section `evaluate`: the question set, who answers it, how answers are scored (see README "Reading the
evaluation").

The step's options class adds the options every step has (`enabled`, `retries`) to `EvaluateConfig`; the field
names, defaults and descriptions here are the recipe's public schema.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from infuse.operators.common.base import Strict
from infuse.operators.common.input_files import input_file
from infuse.operators.evaluate.check import user_questions_problems
from infuse.operators.llm import LLMConfig


class LeakageOptions(Strict):
    n: int = Field(3, ge=1, description="token n-gram size (characters for Chinese, words for English)")
    threshold: float = Field(0.9, gt=0, le=1, description="Jaccard overlap of a question's n-grams with one "
                                                          "training prompt's that counts as leaked")
    action: Literal["fail", "warn"] = Field("fail", description="fail: the step fails listing the pairs; warn: "
                                                                "scored anyway, flagged `leaked`")


class RagOptions(Strict):
    enabled: bool = Field(True, description="the base+RAG and tuned+RAG rows: top-k chunks of this corpus (MiniLM) "
                                            "in the prompt")
    k: int = Field(3, ge=1, le=20)
    max_context_chars: int = Field(1500, ge=100)


class JudgeOptions(Strict):
    enabled: bool = Field(False, description="grade every answer 1-5 against its reference with the synthesis LLM")
    max_tokens: int = Field(96, ge=8)


class EvaluateConfig(Strict):
    """Question set, answerers and scores (see README "Reading the evaluation")."""

    max_domain_items: int = Field(200, ge=0, description="domain items asked (from mix's eval split)")
    max_general_items: int = Field(100, ge=0, description="general items asked (forgetting)")
    paraphrases: int = Field(3, ge=0, le=10, description="reworded variants per domain item (synthesis backend)")
    paraphrase_max_tokens: int = Field(160, ge=16, description="reply cap of one paraphrase request")
    user_questions: str | None = input_file(None, description="your own eval JSONL: question, answer, doc?, aliases?",
                                            problems=user_questions_problems)
    max_new_tokens: int = Field(128, ge=1, description="answer length cap for every model")
    loss: bool = Field(True, description="loss per token on the general items (base vs each tuned model)")
    leakage: LeakageOptions = Field(default_factory=LeakageOptions)
    rag: RagOptions = Field(default_factory=RagOptions)
    judge: JudgeOptions = Field(default_factory=JudgeOptions)
    llm: LLMConfig = Field(default_factory=lambda: LLMConfig(backend="transformers"),
                           description="who runs the answering models: transformers (CPU), vllm (GPU) or openai (a "
                                       "server serving the model directories under their paths; see `served`)")
    served: dict[str, str] = Field(default_factory=dict, description="openai backend: model row (base, sft, ...) -> "
                                                                     "served model name; default its directory")
    synth_llm: LLMConfig | None = Field(None, description="the LLM that rewords questions and judges answers; "
                                        "empty = transformers on the recipe's model (set it to synthesize's llm to "
                                        "use the same endpoint: a step reads only its own options)")
    bootstrap: int = Field(1000, ge=0, description="bootstrap resamples for the CIs")
    seed: int = 0

    def synth(self) -> LLMConfig:
        """The synthesis LLM that rewords questions and judges answers (transformers when none is set)."""
        return self.synth_llm or LLMConfig(backend="transformers")
