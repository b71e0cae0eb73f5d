"""`SelectConfig`: the `select` section of a recipe. Unknown keys are errors."""
from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from infuse.operators.common.base import Strict, runtime
from infuse.operators.llm import LLMConfig
from infuse.operators.synthesize.config import TEMPLATE_STRATEGIES
from infuse.operators.train.config import LoraOptions, TrainOptions

METHODS = ("ifd", "superfilter", "mods", "kcenter", "facility_location", "longest", "diversity", "random")
Method = Literal["ifd", "superfilter", "mods", "kcenter", "facility_location", "longest", "diversity", "random"]


class Budget(Strict):
    """How many rows a method keeps: a share of the candidates, or a count; per group when `per` is set."""

    percent: float | None = Field(None, gt=0, le=100, description="keep this share of the candidates")
    n: int | None = Field(None, ge=0, description="keep this many candidates (instead of percent)")
    per: Literal["doc_id", "format", "strategy", "lang"] | None = Field(
        None, description="apply the budget within each group of this column (doc_id: per source document)")

    @model_validator(mode="after")
    def _one(self) -> "Budget":
        if self.percent is not None and self.n is not None:
            raise ValueError("give percent or n, not both")
        return self

    def keep(self, candidates: int) -> int:
        """How many of `candidates` rows to keep (percent rounds up, so a non-empty group keeps one)."""
        if self.n is not None:
            return min(self.n, candidates)
        pct = 100.0 if self.percent is None else self.percent
        return min(candidates, math.ceil(candidates * pct / 100.0 - 1e-9))

    def label(self) -> str:
        """'top 10%' / 'top 500' (for reject reasons)."""
        if self.n is not None:
            return f"top {self.n}"
        return f"top {100.0 if self.percent is None else self.percent:g}%"


class ScorerOptions(Strict):
    """The causal LM that scores IFD. Its dtype changes the scores a little, so it is in the cache key;
    how work is batched is not (scores do not depend on it: a test checks)."""

    path: str | None = Field(None, description="a local model dir; empty: the recipe's `model:` for ifd, "
                                               "the packaged Gemma 3 270M for superfilter")
    chat_template: str | None = Field(None, description="the scorer's own template when empty (ifd on the recipe "
                                                        "model: the recipe's model.chat_template)")
    engine: Literal["transformers", "vllm"] = Field("transformers", description="vllm: prompt_logprobs, GPU only")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="auto: bf16 on a GPU, "
                                                                                         "fp32 on CPU")
    device: str = runtime("auto")
    batch_tokens: int = runtime(16_384, ge=64, description="padded tokens per forward batch")
    max_batch: int = runtime(64, ge=1, description="sequences per forward batch")
    max_prompt_tokens: int = Field(1024, ge=8, description="longer prompts keep their first token and their end")
    max_answer_tokens: int = Field(1024, ge=1, description="longer answers are scored on their first tokens")
    gpu_memory_utilization: float = runtime(0.85, gt=0, le=1, description="vllm only")


class IFDOptions(Strict):
    variant: Literal["loss_ratio", "ppl_ratio"] = Field(
        "loss_ratio", description="loss_ratio: s(A|Q)/s(A), the paper's IFD; ppl_ratio: exp(s(A|Q))/exp(s(A)), what "
                                  "Cherry_LLM's code ranks by. Same >=1 cut, different ranking")
    max_ifd: float | None = Field(1.0, gt=0, description="drop rows with IFD >= this (the instruction does not help); "
                                                        "empty: keep them as candidates")


class DiversityOptions(Strict):
    """Diversity after IFD (Superfiltering-D), or alone (methods kcenter / facility_location)."""

    method: Literal["none", "kcenter", "facility_location"] = "none"
    pool: float = Field(2.0, ge=1, description="ifd/superfilter: IFD keeps pool x budget rows, diversity picks the "
                                               "budget from them")
    text: Literal["question", "conversation"] = Field("question", description="what is embedded (MiniLM)")


class DeitaOptions(Strict):
    """DEITA-style selection: rows in score order, each kept unless it is too close to one already kept."""

    threshold: float = Field(0.9, gt=-1, le=1, description="cosine similarity at or above which a row is redundant")
    order: Literal["longest", "ifd", "random"] = Field("longest", description="the score rows are visited in")


class QualityOptions(Strict):
    kind: Literal["reward", "judge"] = Field("judge", description="reward: a local reward model; judge: an LLM judge "
                                                                  "through the synthesis backends")
    reward_model: str | None = Field(None, description="a local sequence-classification reward model dir")
    llm: LLMConfig = Field(default_factory=lambda: LLMConfig(backend="transformers"))
    threshold: float = Field(0.0, description="keep rows scoring at or above it (reward logits; judge: 1-10)")
    max_tokens: int = Field(64, ge=8)
    batch_size: int = runtime(8, ge=1)


class NecessityOptions(Strict):
    enabled: bool = True
    model: str | None = Field(None, description="the base model fine-tuned on the seed set; empty: fine-tune it here "
                                                "(LoRA on the recipe's model, with the sft step's code, then merged)")
    train: TrainOptions = Field(default_factory=lambda: TrainOptions(epochs=2, learning_rate=2e-4, warmup_ratio=0.0),
                                description="how the seed model is fine-tuned when `model` is empty")
    lora: LoraOptions = Field(default_factory=LoraOptions)
    llm: LLMConfig = Field(default_factory=lambda: LLMConfig(backend="transformers"),
                           description="generation settings (backend transformers; model = necessity.model)")
    max_tokens: int = Field(256, ge=8)
    method: Literal["rougel", "ngram", "max"] = Field("rougel", description="how the generated answer is scored "
                                                                            "against the reference answer")
    threshold: float = Field(0.5, ge=0, le=1, description="answers scoring below it are answered badly: added")
    max_added: int | None = Field(None, ge=0, description="at most this many added (chosen by k-center)")


class ModsOptions(Strict):
    """MoDS: quality (threshold), coverage (k-center seed set, sized by `budget`), necessity (add what a model
    fine-tuned on the seed answers badly)."""

    quality: QualityOptions = Field(default_factory=QualityOptions)
    necessity: NecessityOptions = Field(default_factory=NecessityOptions)


class SelectConfig(Strict):
    method: Method = Field("ifd", description="ifd | superfilter | mods | kcenter | facility_location | longest | "
                                              "diversity (DEITA) | random")
    budget: Budget = Field(default_factory=Budget, description="empty: keep every candidate (ifd: those with IFD < "
                                                               "max_ifd)")
    exempt_strategies: list[str] = Field(default_factory=lambda: list(TEMPLATE_STRATEGIES),
                                         description="base strategies kept as they are and never scored (templates, "
                                                     "identity: their facts are exact)")
    scorer: ScorerOptions = Field(default_factory=ScorerOptions)
    ifd: IFDOptions = Field(default_factory=IFDOptions)
    diversity: DiversityOptions = Field(default_factory=DiversityOptions)
    deita: DeitaOptions = Field(default_factory=DeitaOptions)
    mods: ModsOptions = Field(default_factory=ModsOptions)
    seed: int = 0

    def exempt(self, strategy: str | None) -> bool:
        """A row is exempt when its base strategy (before any '+paraphrase') is listed."""
        return (strategy or "").split("+")[0] in set(self.exempt_strategies)
