"""`run_preference`: training rows, their chunks' text and the models to sample -> pairs, raw samples, rejects,
export files and the report.

Plain inputs and outputs, so it runs without a flow: the step passes in the
models (their LLM configs, local folders resolved), an item memo per model, a
progress bar maker and the folder the exports go to.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infuse.operators.common.base import Reject
from infuse.operators.preference.config import PreferenceConfig
from infuse.operators.preference.export import write_pair_exports
from infuse.operators.preference.formats import read_user_pairs
from infuse.operators.preference.pairs import build_pairs, choose_prompts, prompts_from_rows, sample_rows
from infuse.operators.preference.report import PreferenceReport, PromptCounts, preference_report
from infuse.operators.preference.sampling import BackendFn, Memo, ProgressFn, ReplyModel, sample_replies


@dataclass
class PreferenceRun:
    """What the preference step writes and reports."""

    pairs: list[dict[str, Any]]  # PAIR_SCHEMA: the generated pairs, then the user pairs
    samples: list[dict[str, Any]]  # SAMPLE_SCHEMA: every sampled reply with its scores and verdict
    rejects: list[Reject]
    exports: dict[str, int]  # relative path -> pairs
    report: PreferenceReport


def run_preference(rows: list[dict[str, Any]], eval_rows: list[dict[str, Any]], sources: dict[str, str],
                   cfg: PreferenceConfig, models: list[ReplyModel], memo_for: Callable[[str], Memo],
                   progress: ProgressFn, exports_dir: Path, backend_fn: BackendFn | None = None) -> PreferenceRun:
    """Prompts from the training rows (never an eval question), replies sampled from each model, one pair per
    prompt with a usable reply, the user pairs after them; all exported to exports_dir."""
    prompts, rejects = prompts_from_rows(rows, sources, eval_rows)
    n_prompts, n_facts = len(prompts), sum(bool(p.short) for p in prompts)
    if cfg.max_prompts is not None and len(prompts) > cfg.max_prompts:
        prompts = choose_prompts(prompts, cfg.max_prompts, cfg.seed)
    candidates = []
    memo_stats: dict[str, dict[str, int]] = {}
    for model in models:
        memo = memo_for(model.name)
        candidates += sample_replies(prompts, model, cfg, memo, progress, backend_fn)
        memo_stats[model.name] = memo.stats()
    pairs, dropped = build_pairs(prompts, candidates, cfg)
    user, bad = read_user_pairs(cfg.user_data, cfg.max_user_pairs)
    rejects += dropped + bad
    files = write_pair_exports(exports_dir, {"train": pairs + user}, cfg.exports)
    report = preference_report(PromptCounts(len(rows), n_prompts, n_facts, len(prompts)), candidates, pairs, user,
                               rejects)
    report.stats |= {"exports": files, "sample_memo": memo_stats}
    return PreferenceRun(pairs + user, sample_rows(candidates), rejects, files, report)
