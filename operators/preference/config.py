"""The preference step's recipe section, less the options every step has: how replies are judged (PairOptions),
which models are sampled and how, and which user pairs and exports go with the pairs."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from infuse.operators.common.input_files import input_file
from infuse.operators.llm import LLMConfig
from infuse.operators.preference.check import user_pairs_problems
from infuse.operators.preference.export import FORMATS
from infuse.operators.preference.pairs import PairOptions


class PreferenceConfig(PairOptions):
    """Where rejected replies come from, how many, and which user pairs are mixed in."""

    sample_from: list[Literal["base", "sft"]] = Field(default_factory=lambda: ["sft"], min_length=1,
                                                      description="models whose replies are rejected candidates")
    llm: LLMConfig = Field(default_factory=lambda: LLMConfig(backend="transformers"),
                           description="transformers | vllm (model = the artifact, set here) | openai (model and "
                                       "base_url of a server you started on the artifact)")
    samples_per_prompt: int = Field(4, ge=1, le=32)
    temperature: float = Field(1.0, gt=0, le=2)
    top_p: float = Field(0.95, gt=0, le=1)
    max_new_tokens: int = Field(128, ge=8)
    max_prompts: int | None = Field(None, ge=1, description="at most this many training questions (a seeded "
                                                            "choice); empty = all")
    seed: int = Field(42, description="the prompt choice and every sampled reply (each request seeded from it, its "
                                     "prompt and k): a run samples the same replies again")
    user_data: list[str] = input_file(default_factory=list, description="your pairs: LLaMA-Factory "
                                                                        "chosen/rejected .json, or "
                                                                        "prompt/chosen/rejected .jsonl",
                                  problems=user_pairs_problems)
    max_user_pairs: int | None = Field(None, ge=1, description="at most this many pairs per user file")
    exports: list[Literal["llamafactory", "swift", "openai"]] = Field(
        default_factory=lambda: list(FORMATS), description="the pairs as DPO files for these tools (`exports`)")
