"""select: choose the QA rows to train on (IFD, Superfiltering, MoDS, diversity, baselines).

Writes `qa` (the chosen rows, same schema, for mix) and `scored` (every row with
its score columns, `selected`, `exempt`, `selected_by` and `reason`), so a
budget can be re-cut in pandas without scoring again. Every dropped row is a
reject with its reason. The report shows the IFD histogram with its cuts and
the kept/dropped counts per source document.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from infuse.operators.common.base import runtime
from infuse.operators.select import SelectConfig, Selection, select_rows
from infuse.operators.select.ifd import IFDScores
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, optional, table


class SelectOptions(StepOptions, SelectConfig):
    """The method, its scorer and the budget; see operators/select. Off unless the recipe turns it on:
    choosing data is a decision (on documents, every row may carry a fact), and scoring costs model time."""

    enabled: bool = runtime(False, description="run this step (off by default); when off, mix reads qa_filter's qa")


def seed_model(ctx: StepContext, opts: SelectConfig, seed_rows: list[dict[str, Any]], base: str) -> str:
    """MoDS necessity's seed model: LoRA on the seed rows with the sft step's worker (a subprocess), merged
    into a plain directory the transformers backend loads. Kept in the step's work dir: a re-run after a
    kill resumes the training from its checkpoint, and a finished merge is reused."""
    import pyarrow.parquet as pq

    from infuse.operators.train.config import Job, LaunchOptions
    from infuse.operators.train.merge import merge_model
    from infuse.tasks.framework import training

    nec = opts.mods.necessity
    folder = ctx.work_dir() / "necessity-model"
    merged = folder / "merged"
    if (merged / "config.json").is_file():
        return str(merged)
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "seed.parquet"
    pq.write_table(pa.Table.from_pylist([{"sample_id": r.get("sample_id") or f"seed{i}", "messages": r["messages"]}
                                         for i, r in enumerate(seed_rows)]), data)
    job = Job(kind="sft", base=base, output_dir=str(folder / "train"), data={"train": str(data), "eval": None},
              model=ctx.cfg.get("model") or {}, train=nec.train, method="lora", lora=nec.lora,
              card={"base": {"source": "model"}, "data": {"seed_rows": len(seed_rows)}})
    training.train(ctx, job, LaunchOptions(), "select: MoDS seed model")
    tmp = folder / "merged.tmp"
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    merge_model(folder / "train" / "final", tmp, dtype="float32")
    tmp.replace(merged)
    return str(merged)


def scorer_choice(opts: SelectConfig, model: dict[str, Any]) -> tuple[str, str | None, str]:
    """(scorer model dir, chat template name, dtype). superfilter: the small packaged model unless a path is
    given; ifd: the recipe's base model, with its template and dtype, unless a scorer path is given."""
    from infuse.operators.common.models import model_dir
    from infuse.operators.select.superfilter import default_scorer

    s = opts.scorer
    if s.path:
        return s.path, s.chat_template, s.dtype
    if opts.method == "superfilter":
        return default_scorer(), s.chat_template, s.dtype
    dtype = s.dtype if s.dtype != "auto" else model.get("dtype") or "auto"
    return model_dir(model.get("path")), s.chat_template or model.get("chat_template"), dtype


def _uses_ifd(opts: SelectConfig) -> bool:
    return opts.method in ("ifd", "superfilter") or (opts.method == "diversity" and opts.deita.order == "ifd")


class Select(Step):
    name = "select"
    stage = 75
    description = "choose the training rows: IFD / Superfiltering / MoDS / k-center / baselines; every row's scores kept"
    gpu = True  # the scorer runs a model; on a GPU in bf16
    inputs = ("qa", optional("documents"))
    outputs = {"qa": table(description="the selected rows"),
               "scored": table(description="every row with its scores, selected, exempt, selected_by and reason")}
    Options = SelectOptions

    def config(self, recipe: Any) -> dict[str, Any]:
        cfg = super().config(recipe)
        cfg["model"] = recipe.model.model_dump(mode="json")  # the base model: ifd's scorer by default
        return cfg

    def estimate(self, ctx: StepContext) -> str:
        opts: SelectConfig = ctx.options
        strategies = ctx.read("qa", columns=["strategy"]).column("strategy").to_pylist()
        cand = sum(not opts.exempt(s) for s in strategies)
        what = f"{2 * cand} forward passes (IFD)" if _uses_ifd(opts) else opts.method
        return f"select: {len(strategies)} rows, {cand} candidates ({len(strategies) - cand} exempt); {what}"

    def run(self, ctx: StepContext) -> StepOutput:
        opts: SelectConfig = ctx.options
        model = ctx.cfg.get("model") or {}
        qa = ctx.read("qa")
        rows = qa.to_pylist()
        timing: dict[str, Any] = {}
        scorer_info: dict[str, Any] = {}
        def ifd(conversations: list[Any]) -> IFDScores:
            path, template_name, dtype = scorer_choice(opts, model)
            scorer_info.update(path=path, template=template_name or "(the model's own)", dtype=dtype,
                               engine=opts.scorer.engine)
            return _ifd_scores(ctx, opts, path, template_name, dtype, conversations, timing)

        sel = select_rows(rows, opts, ifd=ifd, quality=_quality_fn(opts), necessity=_necessity_fn(ctx, opts, model))
        kept_idx = np.flatnonzero(sel.selected)
        kept = qa.take(pa.array(kept_idx, type=pa.int64()))
        out = ctx.write_table("qa", kept, qa.schema)
        scored = ctx.write_table("scored", _scored_table(qa, sel))
        ids = [r.get("sample_id") or f"row{i}" for i, r in enumerate(rows)]
        report = _report(ctx, rows, sel, opts, scorer_info, timing)
        return StepOutput({"qa": out, "scored": scored}, sel.rejects(ids), report)


def _ifd_scores(ctx: StepContext, opts: SelectConfig, path: str, template_name: str | None, dtype: str,
                conversations: list[Any], timing: dict[str, Any]) -> IFDScores:
    from infuse.operators.select.ifd import HFLossScorer, compute_ifd
    from infuse.operators.select.template import scorer_chat_template

    s = opts.scorer
    t0 = time.perf_counter()
    if s.engine == "vllm":
        from transformers import AutoTokenizer

        from infuse.operators.select.ifd_vllm import VLLMLossScorer

        scorer: Any = VLLMLossScorer(path, dtype, s.gpu_memory_utilization)
        tok = AutoTokenizer.from_pretrained(path)
    else:
        scorer, tok = HFLossScorer.load(path, dtype=dtype, device=s.device, batch_tokens=s.batch_tokens,
                                        max_batch=s.max_batch)
    template = scorer_chat_template(tok, template_name)
    t1 = time.perf_counter()
    with ctx.progress(2 * len(conversations), "select: IFD", "sequences") as bar:
        scores = compute_ifd(scorer, tok, template, conversations, s.max_prompt_tokens, s.max_answer_tokens,
                             progress=bar.update)
    t2 = time.perf_counter()
    tokens = int(2 * scores.answer_tokens.sum() + scores.prompt_tokens.sum())  # fed tokens, both passes
    timing.update(load_s=round(t1 - t0, 2), score_s=round(t2 - t1, 2), tokens=tokens,
                  tokens_per_s=round(tokens / (t2 - t1), 1) if t2 > t1 else None)
    return scores


def _quality_fn(opts: SelectConfig) -> Callable[[list[Any], list[str]], Any] | None:
    if opts.method != "mods":
        return None
    q = opts.mods.quality

    def quality(conversations: list[Any], langs: list[str]) -> Any:
        from infuse.operators.select.quality import judge_scores, reward_scores

        if q.kind == "reward":
            if not q.reward_model:
                raise ValueError("select: mods.quality.kind reward needs mods.quality.reward_model (a local dir)")
            return reward_scores(q.reward_model, conversations, q.batch_size)
        from infuse.operators.llm import make_backend

        return judge_scores(make_backend(q.llm), conversations, langs, q.max_tokens)

    return quality


def _necessity_fn(ctx: StepContext, opts: SelectConfig, model: dict[str, Any]) -> Callable[..., Any] | None:
    nec = opts.mods.necessity
    if opts.method != "mods" or not nec.enabled:
        return None

    def necessity(seed_rows: list[dict[str, Any]], conversations: list[Any]) -> Any:
        from infuse.operators.llm import make_backend
        from infuse.operators.common.models import model_dir
        from infuse.operators.select.mods import necessity_scores

        tuned = nec.model or seed_model(ctx, opts, seed_rows, model_dir(model.get("path")))
        backend = make_backend(nec.llm.model_copy(update={"model": tuned}))
        return necessity_scores(backend, conversations, nec.max_tokens, nec.method)

    return necessity


def _scored_table(qa: pa.Table, sel: Selection) -> pa.Table:
    cols = {name: qa.column(name) for name in qa.column_names}
    cols["selected"] = pa.array(sel.selected.tolist(), pa.bool_())
    cols["exempt"] = pa.array(sel.exempt.tolist(), pa.bool_())
    cols["selected_by"] = pa.array(sel.by, pa.string())
    cols["reason"] = pa.array(sel.reasons, pa.string())
    for name, values in sorted(sel.scores.items()):
        cols[name] = pa.array([float(v) if np.isfinite(v) else None for v in values], pa.float64())
    return pa.table(cols)


def _sources(ctx: StepContext) -> dict[str, str]:
    if not ctx.has("documents"):
        return {}
    docs = ctx.read("documents", columns=["doc_id", "path"])
    return dict(zip(docs.column("doc_id").to_pylist(), docs.column("path").to_pylist()))


def _report(ctx: StepContext, rows: list[dict[str, Any]], sel: Selection, opts: SelectConfig,
            scorer: dict[str, Any], timing: dict[str, Any]) -> StepReport:
    paths = _sources(ctx)
    by_source: dict[str, dict[str, int]] = {}
    for i, r in enumerate(rows):
        src = paths.get(r.get("doc_id") or "", r.get("doc_id") or "") or "(no source document)"
        d = by_source.setdefault(src, {"rows": 0, "kept": 0, "dropped": 0, "exempt": 0})
        d["rows"] += 1
        d["kept" if sel.selected[i] else "dropped"] += 1
        d["exempt"] += int(sel.exempt[i])
    table_ = [{"source": k, **v} for k, v in sorted(by_source.items())]
    images: dict[str, bytes] = {}
    stats: dict[str, Any] = {**sel.stats, "by_source": by_source}
    md = [f"### select: {opts.method}", "",
          f"{int(sel.selected.sum())} of {len(rows)} rows kept ({int(sel.exempt.sum())} exempt by strategy: "
          f"{', '.join(opts.exempt_strategies) or 'none'}); budget {opts.budget.label()}"
          + (f" per {opts.budget.per}" if opts.budget.per else "") + "."]
    if scorer:
        md += ["", f"Scorer: `{scorer['path']}` ({scorer['engine']}, dtype {scorer['dtype']}), chat template "
                   f"{scorer['template']}."]
        stats["scorer"] = scorer
    if timing:
        md.append(f"IFD: {timing['tokens']} tokens in {timing['score_s']} s ({timing['tokens_per_s']} tokens/s), "
                  f"model load {timing['load_s']} s.")
        stats["ifd_timing"] = timing
    cut = sel.cut
    if cut:
        from infuse.operators.select.plots import ifd_histogram_png

        values = np.asarray(cut["values"], dtype=np.float64)
        images["ifd_histogram"] = ifd_histogram_png(cut["score"], values, cut["max"], cut["keep"], cut["label"])
        stats["ifd"] = {**stats.get("ifd", {}), "max_ifd": cut["max"], "keep_from": cut["keep"]}
        md += ["", f"The histogram shows every scored row's {cut['score']}; rows right of the red line "
                   f"({cut['score']} >= {cut['max']}) are dropped as the prompt does not help their answer, and the "
                   "orange line is the lowest value the budget kept. "
                   + ("Variant: loss ratio s(A|Q)/s(A) (the paper's IFD)." if opts.ifd.variant == "loss_ratio" else
                      "Variant: perplexity ratio exp(s(A|Q) - s(A)) (Cherry_LLM's code); it ranks rows differently "
                      "from the loss ratio.")]
    return StepReport(rows_in=len(rows), kept=int(sel.selected.sum()), unit_in="samples", unit_out="samples",
                      markdown="\n".join(md), tables={"by-source": table_}, images=images, stats=stats)
