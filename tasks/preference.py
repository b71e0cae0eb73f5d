"""preference: (prompt, chosen, rejected) pairs for dpo, from the training questions and the models' own replies.

Prompts are the domain samples of mix's `train` (never an eval question),
fact questions with a gold short answer first; chosen is the grounded
reference answer; rejected is one of a few samples from the base and/or SFT
model (any LLM backend: transformers and vllm load the model artifacts, openai
asks a server you pointed at them): for a fact question a reply that fails the
strict score against the gold answer, otherwise the most fluent reply that is
not supported by the source span (see operators/preference/pairs.py). User
pairs (LLaMA-Factory JSON or prompt/chosen/rejected JSONL) are mixed in. Every
raw sample is kept in `samples` with its scores and verdict; every dropped
prompt is a reject. The pairs are also exported for LLaMA-Factory, ms-swift and
OpenAI (`exports`), as mix exports the SFT data.
"""
from __future__ import annotations

import hashlib
import shutil
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from infuse.operators.base import check_stop, runtime
from infuse.operators.llm import ChatRequest, LLMConfig, make_backend
from infuse.operators.preference import (PAIR_SCHEMA, SAMPLE_SCHEMA, Candidate, PairOptions, prompts_from_rows,
                                         read_user_pairs)
from infuse.operators.preference.export import FORMATS, usage, write_pair_exports
from infuse.operators.preference.pairs import Prompt, build_pairs, choose_prompts, sample_rows
from infuse.tasks import training
from infuse.tasks.base import Step, StepContext, StepOptions, StepOutput, StepReport, optional, report, table

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "generation_config.json", "tokenizer.model")


class PreferenceOptions(StepOptions, PairOptions):
    """Where rejected replies come from, how many, and which user pairs are mixed in."""

    enabled: bool = runtime(False, description="off by default, like sft and dpo: turn all three on")
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
    seed: int = 42
    user_data: list[str] = Field(default_factory=list, description="your pairs: LLaMA-Factory chosen/rejected "
                                                                   ".json, or prompt/chosen/rejected .jsonl")
    max_user_pairs: int | None = Field(None, ge=1, description="at most this many pairs per user file")
    exports: list[Literal["llamafactory", "swift", "openai"]] = Field(
        default_factory=lambda: list(FORMATS), description="the pairs as DPO files for these tools (`exports`)")


class Preference(Step):
    name = "preference"
    stage = 100
    description = ("preference pairs: chosen = grounded reference, rejected = a model's reply that fails a fact's "
                   "strict score, or a fluent ungrounded one; exported for LLaMA-Factory, ms-swift, OpenAI")
    inputs = ("train", optional("eval"), "chunks", "sft.model", optional("cpt.model"))
    outputs = {"pairs": table(PAIR_SCHEMA, "prompt, chosen, rejected"),
               "samples": table(SAMPLE_SCHEMA, "every sampled reply with its scores and verdict"),
               "exports": report("the pairs as LLaMA-Factory, ms-swift and OpenAI DPO files")}
    Options = PreferenceOptions

    def config(self, recipe: Any) -> dict[str, Any]:
        return {**super().config(recipe), "model": training.model_config(recipe)}

    def fingerprint(self, cfg: dict[str, Any]) -> dict[str, Any]:
        files = {}
        for path in cfg.get("user_data") or []:
            p = Path(path)
            files[path] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else f"missing:{path}"
        return {"user_data": files}

    def check(self, cfg: dict[str, Any]) -> list[str]:
        return [f"user_data: {p} does not exist" for p in cfg.get("user_data") or [] if not Path(p).is_file()]

    def run(self, ctx: StepContext) -> StepOutput:
        o = ctx.options
        chunks = ctx.read("chunks", columns=["chunk_id", "text"])
        sources = dict(zip(chunks.column("chunk_id").to_pylist(), chunks.column("text").to_pylist()))
        rows = ctx.read("train").to_pylist()
        evals = ctx.read("eval").to_pylist() if ctx.has("eval") else []
        prompts, rejects = prompts_from_rows(rows, sources, evals)
        n_prompts, n_facts = len(prompts), sum(bool(p.short) for p in prompts)
        if o.max_prompts is not None and len(prompts) > o.max_prompts:
            prompts = choose_prompts(prompts, o.max_prompts, o.seed)
        candidates = []
        for source in o.sample_from:
            candidates += self._sample(ctx, source, prompts)
        pairs, dropped = build_pairs(prompts, candidates, o)
        user, bad = read_user_pairs(o.user_data, o.max_user_pairs)
        rejects += dropped + bad
        out_pairs = ctx.write_table("pairs", pairs + user)
        out_samples = ctx.write_table("samples", sample_rows(candidates))
        with ctx.dir_output("exports") as out:
            files = write_pair_exports(out.path, {"train": pairs + user}, o.exports)
            out.describe = f"exports: {', '.join(o.exports)} ({len(files)} files)"
        rep = _report(len(rows), n_prompts, n_facts, prompts, candidates, pairs, user, rejects)
        where = ctx.store.display(out.ref.path)
        rep.markdown += "\n\n" + f"Exports in `{where}`.\n\n" + usage(["train"] if files else [], o.exports, where,
                                                                          level=3)
        rep.stats["exports"] = files
        return StepOutput({"pairs": out_pairs, "samples": out_samples, "exports": out.ref}, rejects, rep)

    def _sample(self, ctx: StepContext, source: str, prompts: list[Prompt]) -> list[Candidate]:
        """Every prompt's samples from one model, cached in the work dir (a re-run after a kill keeps them)."""
        o = ctx.options
        cache = ctx.work_dir() / f"samples-{source}.parquet"
        if cache.is_file():
            return [Candidate(r["sample_id"], r["model"], r["k"], r["text"], r["finish_reason"], r["error"])
                    for r in pq.read_table(cache).to_pylist()]
        backend = make_backend(self._llm(ctx, source))
        requests = [ChatRequest(f"{p.sample_id}#{k}", p.prompt, max_tokens=o.max_new_tokens, temperature=o.temperature,
                                top_p=o.top_p) for p in prompts for k in range(o.samples_per_prompt)]
        out: list[Candidate] = []
        step = max(o.llm.batch_size, o.llm.concurrency)  # a batch per call: progress, and a stop between calls
        with ctx.progress(len(requests), f"preference: sampling {source}", "replies") as bar:
            for i in range(0, len(requests), step):
                check_stop()
                for req, res in zip(requests[i:i + step], backend.generate(requests[i:i + step])):
                    sid, k = req.id.rsplit("#", 1)
                    out.append(Candidate(sid, source, int(k), res.text, res.finish_reason, res.error))
                bar.update(len(requests[i:i + step]))
        del backend  # the model leaves memory before the next one loads
        tmp = cache.with_suffix(".tmp")
        pq.write_table(pa.Table.from_pylist([{"sample_id": c.sample_id, "model": c.model, "k": c.k, "text": c.text,
                                              "finish_reason": c.finish_reason, "error": c.error} for c in out]), tmp)
        tmp.replace(cache)
        return out

    def _llm(self, ctx: StepContext, source: str) -> LLMConfig:
        """The backend config for one model: local backends load the artifact itself."""
        llm = ctx.options.llm
        if llm.backend == "openai":
            return llm
        sft = ctx.input_dir("sft.model")
        if source == "sft":
            return llm.model_copy(update={"model": str(sft)})
        return llm.model_copy(update={"model": str(_base_with_template(ctx, sft))})


def _base_with_template(ctx: StepContext, sft: Path) -> Path:
    """The base model's weights (hard links) with the SFT tokenizer: the base has no chat template of its own,
    and must be asked in the same template as the SFT model."""
    base, _ = training.base_model(ctx)
    folder = ctx.work_dir() / "base-model"
    if not (folder / ".done").is_file():
        from infuse.operators.train.session import link_tree

        shutil.rmtree(folder, ignore_errors=True)
        link_tree(Path(base), folder)
        for name in TOKENIZER_FILES:
            if (sft / name).is_file():
                (folder / name).unlink(missing_ok=True)
                shutil.copy2(sft / name, folder / name)
        (folder / ".done").write_text("", encoding="utf-8")
    return folder


def _short(text: str | None, n: int = 160) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _report(n_rows: int, n_prompts: int, n_facts: int, prompts: list[Prompt], candidates: list[Candidate],
            pairs: list[dict[str, Any]], user: list[dict[str, Any]], rejects: list[Any]) -> StepReport:
    verdicts = Counter(c.verdict for c in candidates)
    reasons = Counter(r.reason for r in rejects)
    by_strict = sum(p["rejected_strict"] is not None for p in pairs)
    md = (f"{n_prompts} training questions can be preference prompts ({n_facts} fact questions with a gold short "
          f"answer; {reasons.get('eval_prompt', 0)} held out as eval questions); {len(prompts)} were sampled, "
          f"{len(candidates)} replies: "
          + ", ".join(f"{v} {k}" for k, v in sorted(verdicts.items())) + f". **{len(pairs)} generated pairs**"
          + f" ({by_strict} with a reply that fails the strict score as rejected)"
          + (f" and {len(user)} user pairs" if user else "") + ".")
    examples = [{"question": _short(p["prompt"][-1]["content"], 100), "chosen": _short(p["chosen"]),
                 "rejected": _short(p["rejected"]), "from": p["rejected_from"],
                 "rejected_strict": p.get("rejected_strict"), "rejected_grounding": p["rejected_grounding"]}
                for p in (pairs + user)[:8]]
    counts = [{"what": k, "count": v} for k, v in
              [("training rows", n_rows), ("prompts", n_prompts), ("fact prompts", n_facts),
               ("prompts sampled", len(prompts)),
               ("replies sampled", len(candidates)), *[(f"replies {k}", v) for k, v in sorted(verdicts.items())],
               *[(f"dropped: {k}", v) for k, v in sorted(reasons.items())], ("generated pairs", len(pairs)),
               ("user pairs", len(user))]]
    return StepReport(rows_in=len(prompts) + len(user) + sum(1 for r in rejects if r.reason.startswith("malformed")),
                      kept=len(pairs) + len(user), unit_in="prompts", unit_out="pairs", markdown=md,
                      tables={"examples": examples, "counts": counts},
                      stats={"prompts": n_prompts, "fact_prompts": n_facts, "sampled": len(prompts),
                             "replies": dict(verdicts), "pairs": len(pairs), "strict_pairs": by_strict,
                             "user_pairs": len(user), "dropped": dict(reasons)})
