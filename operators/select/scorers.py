"""The models select scores with, built from the recipe, and loaded only when the method calls them.

- IFD: `scorer.path`, else (superfilter) the packaged Gemma 3 270M, else (ifd)
  the recipe's base model with its template and dtype. Prompts are rendered
  with the chat template training resolves for the scorer
  (`operators/train/templates.py`), so IFD conditions an answer on its prompt
  as training will show it; `scorer.chat_template` may also be a Jinja string.
- MoDS quality: a local reward model or an LLM judge; necessity: the seed
  model's answers (the seed model is fine-tuned by `seed.py` unless named).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from infuse.operators.select.config import ScorerOptions, SelectConfig
from infuse.operators.select.ifd import IFDScores
from infuse.operators.select.methods.base import NecessityFn, QualityFn, Scores

ProgressFn = Callable[[int, str, str], AbstractContextManager[Any]]  # (total, desc, unit) -> a bar with update(n)
SeedModelFn = Callable[[list[dict[str, Any]], str], str]  # (seed rows, base model dir) -> the tuned model dir


def uses_ifd(cfg: SelectConfig) -> bool:
    return cfg.method in ("ifd", "superfilter") or (cfg.method == "diversity" and cfg.deita.order == "ifd")


def scorer_choice(cfg: SelectConfig, model: dict[str, Any]) -> tuple[str, str | None, str]:
    """(scorer model dir, chat template name, dtype). superfilter: the small packaged model unless a path is
    given; ifd: the recipe's base model, with its template and dtype, unless a scorer path is given."""
    from infuse.operators.common.models import local_model_path, model_dir

    s = cfg.scorer
    if s.path:
        return s.path, s.chat_template, s.dtype
    if cfg.method == "superfilter":
        return str(local_model_path()), s.chat_template, s.dtype
    dtype = s.dtype if s.dtype != "auto" else model.get("dtype") or "auto"
    return model_dir(model.get("path")), s.chat_template or model.get("chat_template"), dtype


def scorer_template(tokenizer: Any, path: str, name: str | None) -> tuple[str, str]:
    """(Jinja source, its name for the report): a Jinja string as given, else the template training would
    use for this model (`templates.for_prompts`)."""
    if name and ("{%" in name or "{{" in name):
        return name, "(a Jinja string from the recipe)"
    from transformers import AutoConfig

    from infuse.operators.train.templates import for_prompts

    tpl = for_prompts(tokenizer, AutoConfig.from_pretrained(path).model_type, name)
    return tpl.source, tpl.name


def load_scorer(s: ScorerOptions, path: str, dtype: str) -> tuple[Any, Any]:
    """(loss scorer, tokenizer) for the chosen engine."""
    if s.engine == "vllm":
        from transformers import AutoTokenizer

        from infuse.operators.select.ifd_vllm import VLLMLossScorer

        return VLLMLossScorer(path, dtype, s.gpu_memory_utilization), AutoTokenizer.from_pretrained(path)
    from infuse.operators.select.ifd import HFLossScorer

    return HFLossScorer.load(path, dtype=dtype, device=s.device, batch_tokens=s.batch_tokens, max_batch=s.max_batch)


class IFDScorer:
    """`select_rows`' `ifd(conversations)`: loads the scorer when first called; `info` (which model and
    template scored) and `timing` stay empty when no method called it, and feed the report."""

    def __init__(self, cfg: SelectConfig, model: dict[str, Any], progress: ProgressFn) -> None:
        self.cfg, self.model, self.progress = cfg, model, progress
        self.info: dict[str, Any] = {}
        self.timing: dict[str, Any] = {}

    def __call__(self, conversations: list[Any]) -> IFDScores:
        from infuse.operators.select.ifd import compute_ifd

        s = self.cfg.scorer
        path, template_name, dtype = scorer_choice(self.cfg, self.model)
        self.info.update(path=path, template=template_name, dtype=dtype, engine=s.engine)
        t0 = time.perf_counter()
        scorer, tok = load_scorer(s, path, dtype)
        template, self.info["template"] = scorer_template(tok, path, template_name)
        t1 = time.perf_counter()
        with self.progress(2 * len(conversations), "select: IFD", "sequences") as bar:
            scores = compute_ifd(scorer, tok, template, conversations, s.max_prompt_tokens, s.max_answer_tokens,
                                 progress=bar.update)
        t2 = time.perf_counter()
        tokens = int(2 * scores.answer_tokens.sum() + scores.prompt_tokens.sum())  # fed tokens, both passes
        self.timing.update(load_s=round(t1 - t0, 2), score_s=round(t2 - t1, 2), tokens=tokens,
                           tokens_per_s=round(tokens / (t2 - t1), 1) if t2 > t1 else None)
        return scores


def quality_fn(cfg: SelectConfig) -> QualityFn | None:
    """MoDS' quality scorer: a reward model or an LLM judge (None for other methods)."""
    if cfg.method != "mods":
        return None
    q = cfg.mods.quality

    def quality(conversations: list[Any], langs: list[str]) -> Scores:
        from infuse.operators.select.quality import judge_scores, reward_scores

        if q.kind == "reward":
            if not q.reward_model:
                raise ValueError("select: mods.quality.kind reward needs mods.quality.reward_model (a local dir)")
            return reward_scores(q.reward_model, conversations, q.batch_size)
        from infuse.operators.llm import make_backend

        return judge_scores(make_backend(q.llm), conversations, langs, q.max_tokens)

    return quality


def necessity_fn(cfg: SelectConfig, model: dict[str, Any], seed_model: SeedModelFn) -> NecessityFn | None:
    """MoDS' necessity scorer: `necessity.model`, or the model `seed_model` tunes on the seed rows, answers
    the rest (None unless method mods with necessity on)."""
    nec = cfg.mods.necessity
    if cfg.method != "mods" or not nec.enabled:
        return None

    def necessity(seed_rows: list[dict[str, Any]], conversations: list[Any]) -> Scores:
        from infuse.operators.common.models import model_dir
        from infuse.operators.llm import make_backend
        from infuse.operators.select.mods import necessity_scores

        tuned = nec.model or seed_model(seed_rows, model_dir(model.get("path")))
        backend = make_backend(nec.llm.model_copy(update={"model": tuned}))
        return necessity_scores(backend, conversations, nec.max_tokens, nec.method)

    return necessity
