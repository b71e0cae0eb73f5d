"""`evaluate`: one run's evaluation, from plain inputs to plain outputs (testable without Prefect).

Questions (`question_set`), the leakage check against the training prompts,
who answers (`answerers`), retrieval for the +RAG rows, the answers and their
scores (`asking`), the loss on the general items, the optional judge, then the
`questions` and `scores` rows and the report. What the caller's framework
provides comes in as `Services`: the answer memo, progress bars, the work dir
(paraphrases and merged models survive a kill there) and a warning log.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from infuse.operators.common.base import Reject
from infuse.operators.evaluate import report as rep
from infuse.operators.evaluate.answer import Answerer
from infuse.operators.evaluate.answerers import Tuned, answerers
from infuse.operators.evaluate.asking import add_losses, ask_all
from infuse.operators.evaluate.config import EvaluateConfig, LeakageOptions
from infuse.operators.evaluate.judge import judge, rubric
from infuse.operators.evaluate.leakage import LeakageError, find_leaks, prompts_of
from infuse.operators.evaluate.question_set import question_set
from infuse.operators.evaluate.questions import CLOSED_BOOK, GROUPS, Item
from infuse.operators.evaluate.rag import retrieve
from infuse.operators.evaluate.services import Services
from infuse.operators.llm import LLMBackend, make_backend

QUESTIONS_SCHEMA = pa.schema([
    ("item_id", pa.string()), ("group", pa.string()), ("question", pa.string()), ("reference", pa.string()),
    ("aliases", pa.list_(pa.string())), ("doc_id", pa.string()), ("chunk_id", pa.string()),
    ("span_start", pa.int64()), ("span_end", pa.int64()), ("lang", pa.string()), ("parent_id", pa.string()),
    ("sample_id", pa.string()), ("leaked", pa.bool_()), ("fact_ids", pa.list_(pa.string())),
    ("long_reference", pa.string())])
SCORES_SCHEMA = pa.schema([
    ("model", pa.string()), ("item_id", pa.string()), ("group", pa.string()), ("question", pa.string()),
    ("reference", pa.string()), ("answer", pa.string()), ("error", pa.string()), ("strict", pa.float64()),
    ("flag", pa.string()), ("f1", pa.float64()),
    ("rouge_l", pa.float64()), ("contains", pa.float64()), ("judge", pa.float64()), ("loss_sum", pa.float64()),
    ("loss_tokens", pa.int64()), ("doc_id", pa.string()), ("lang", pa.string()), ("rag_chunks", pa.list_(pa.string())),
    ("finish_reason", pa.string())])


@dataclass
class Inputs:
    """What the run gives the evaluation; a table the run does not have is None."""

    base: Path  # the recipe's base model directory
    eval_rows: list[dict[str, Any]] | None = None  # mix's eval split
    train_rows: list[dict[str, Any]] | None = None  # mix's train split: sample_id, messages
    chunks: list[dict[str, Any]] | None = None  # the corpus for retrieval: chunk_id, text
    models: list[Tuned] = field(default_factory=list)  # every model the run wrote, in pipeline order
    chat_template: str | None = None  # the recipe's template name (the base's when no model was tuned)


@dataclass
class Report:
    """What the report shows: markdown, tables, PNG charts, and the stats of the run's manifest."""

    markdown: str
    tables: dict[str, list[dict[str, Any]]]
    images: dict[str, bytes]
    stats: dict[str, Any]


@dataclass
class Outcome:
    """The `questions` and `scores` rows, every reject (turned-down questions, ungraded answers), the report."""

    questions: list[dict[str, Any]]
    scores: list[dict[str, Any]]
    rejects: list[Reject]
    rows_in: int  # questions considered: asked and turned down
    kept: int  # questions asked
    report: Report


def evaluate(inp: Inputs, o: EvaluateConfig, sv: Services) -> Outcome:
    """Ask every model every question, score the answers, and report. Raises LeakageError when an eval question
    is a training prompt (leakage.action: fail)."""
    if inp.eval_rows is None and not o.user_questions:
        raise ValueError("evaluate needs mix's `eval` split or steps.evaluate.user_questions; neither is here")
    synth = sv.synth or (lambda: make_backend(o.synth()))
    items, rejects = question_set(inp.eval_rows, o, sv.work_dir / "paraphrases.json", synth, sv.progress)
    notes: list[str] = []
    leaked = _leakage(items, inp.train_rows, o.leakage, notes, sv.warn)
    models = answerers(inp.base, inp.models, sv.work_dir / "models", inp.chat_template,
                       rag=o.rag.enabled and inp.chunks is not None)
    prompts, chunk_ids = _retrieval(items, inp.chunks, o, notes)
    if not prompts:
        models = [a for a in models if not a.rag]
    scores = ask_all(models, items, prompts, chunk_ids, o, sv.memo, sv.progress)
    notes.append(f"answers: {sv.memo.hits} kept from earlier runs (same model, prompt and settings), "
                 f"{sv.memo.misses} generated")
    if o.loss:
        add_losses(models, items, scores, o)
    text, ungraded = _judge(scores, o, synth) if o.judge.enabled else (None, [])
    report = _report(items, models, scores, notes, text, o)
    report.stats["answer_memo"] = sv.memo.stats()
    return Outcome(_question_rows(items, leaked), scores, rejects + ungraded, rows_in=len(items) + len(rejects),
                   kept=len(items), report=report)


def _leakage(items: list[Item], train_rows: list[dict[str, Any]] | None, opts: LeakageOptions, notes: list[str],
             warn: Callable[[str], None]) -> set[str]:
    """The ids of the closed-book questions that are training prompts (action warn); action fail raises."""
    if train_rows is None:
        notes.append("no `train` split in this run: the leakage check had nothing to compare with")
        return set()
    checked = [it for it in items if it.group in CLOSED_BOOK]
    leaks = find_leaks(checked, prompts_of(train_rows), opts.n, opts.threshold)
    if leaks and opts.action == "fail":
        raise LeakageError(leaks, opts.n, opts.threshold)
    if leaks:
        notes.append(f"{len(leaks)} eval question(s) are in the training data (leakage.action: warn): flagged "
                     f"`leaked` in `questions`; e.g. {leaks[0].line()}")
        warn(str(LeakageError(leaks, opts.n, opts.threshold)))
    return {lk.item_id for lk in leaks}


def _retrieval(items: list[Item], chunks: list[dict[str, Any]] | None, o: EvaluateConfig,
               notes: list[str]) -> tuple[dict[str, list[dict[str, str]]], dict[str, list[str]]]:
    """The +RAG prompts and their chunk ids by item id; none when retrieval is off or the run has no chunks."""
    if not o.rag.enabled:
        return {}, {}
    if chunks is None:
        notes.append("no `chunks` in this run: no base+RAG or tuned+RAG row")
        return {}, {}
    return retrieve(items, chunks, o.rag.k, o.rag.max_context_chars)


def _judge(scores: list[dict[str, Any]], o: EvaluateConfig,
           synth: Callable[[], LLMBackend]) -> tuple[str, list[Reject]]:
    """Every answer's judge grade into its row; the rubric of each language asked, and the ungraded rows."""
    grades, ungraded = judge(scores, synth(), o.judge.max_tokens)
    for s, g in zip(scores, grades):
        s["judge"] = None if g is None else float(g)
    langs = sorted({s["lang"] for s in scores} or {"en"})
    return "\n\n".join(rubric(lang) for lang in langs), ungraded


def _question_rows(items: list[Item], leaked: set[str]) -> list[dict[str, Any]]:
    """The `questions` rows: every item asked, flagged `leaked` when it is a training prompt."""
    return [{**{k: v for k, v in it.row().items() if k in QUESTIONS_SCHEMA.names}, "leaked": it.item_id in leaked}
            for it in items]


def _report(items: list[Item], who: list[Answerer], scores: list[dict[str, Any]], notes: list[str],
            rubric_text: str | None, o: EvaluateConfig) -> Report:
    """The table by model and group, the headline, forgetting, per document and per fact, flags, and bar charts
    of strict, contains and F1."""
    models = [a.name for a in who]
    tuned = [a.name for a in who if not a.rag and a.name != "base"]
    rows = rep.summary(scores, models, o.bootstrap, o.seed)
    head, forget = rep.headline(rows, tuned), rep.forgetting(rows, tuned)
    docs, facts = rep.per_document(scores, models), rep.per_fact(scores, items, models)
    flags = rep.flag_counts(scores, models)
    failed = sum(1 for s in scores if s["error"])
    if failed:
        notes.append(f"{failed} answer(s) failed (scored 0; see `error` in `scores`)")
    md = rep.markdown(rows, head, forget, docs, notes, rubric_text, facts=facts, flags=flags, models=models)
    stats = {"table": rows, "headline": head, "closed_book": rep.closed_book(rows, tuned), "forgetting": forget,
             "models": models, "groups": {g: sum(1 for it in items if it.group == g) for g in GROUPS},
             "flags": flags, "answers": len(scores), "failed_answers": failed}
    return Report(md, tables={"table": rows, "forgetting": forget, "per-document": docs, "per-fact": facts},
                  images={"accuracy": rep.bar_png(rows, "strict"), "contains": rep.bar_png(rows, "contains"),
                          "f1": rep.bar_png(rows, "f1")}, stats=stats)
