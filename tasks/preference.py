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

from infuse.operators.common.base import check_stop, key_dump, runtime, stable_hash
from infuse.operators.llm import ChatRequest, LLMConfig, make_backend
from infuse.operators.preference import (PAIR_SCHEMA, SAMPLE_SCHEMA, Candidate, PairOptions, prompts_from_rows,
                                         read_user_pairs)
from infuse.operators.preference.export import FORMATS, usage, write_pair_exports
from infuse.operators.preference.pairs import Prompt, build_pairs, choose_prompts, sample_rows
from infuse.tasks.framework import training
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, optional, report, table
from infuse.tasks.framework.checks import json_error, jsonl_rows, read_text, row_problems, shown
from infuse.tasks.framework.item_memo import ItemMemo

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
        """Every user pairs file: there, UTF-8, and every line (.jsonl) or list item (.json) a pair."""
        problems: list[str] = []
        for i, path in enumerate(cfg.get("user_data") or []):
            problems += _user_pairs_problems(f"user_data.{i}", path)
        return problems

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
        self.memo_stats: dict[str, dict[str, int]] = {}
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
        rep.stats["sample_memo"] = self.memo_stats
        return StepOutput({"pairs": out_pairs, "samples": out_samples, "exports": out.ref}, rejects, rep)

    def _sample(self, ctx: StepContext, source: str, prompts: list[Prompt]) -> list[Candidate]:
        """Every prompt's samples from one model. Each reply is kept by (model content, prompt, k, sampling
        settings) as soon as its batch is done: a re-run after a kill, or with more training rows, samples only
        what it lacks. Failed requests are not kept (asked again)."""
        o = ctx.options
        memo = ItemMemo(ctx.store, self.name, f"samples-{source}", fresh=ctx.fresh)
        llm = self._llm(ctx, source)
        sft_sha = ctx.input("sft.model").sha256
        model_id = sft_sha if source == "sft" else f"base-under:{sft_sha}"
        setting = [model_id, key_dump(llm.model_copy(update={"model": None})) if llm.backend != "openai"
                   else key_dump(llm), o.temperature, o.top_p, o.max_new_tokens]
        requests = [ChatRequest(f"{p.sample_id}#{k}", p.prompt, max_tokens=o.max_new_tokens, temperature=o.temperature,
                                top_p=o.top_p) for p in prompts for k in range(o.samples_per_prompt)]
        keys = [stable_hash(["pref-sample.v1", *setting, r.messages, r.id.rsplit("#", 1)[1]])[:32] for r in requests]
        got: dict[int, Candidate] = {}
        for i, (req, key) in enumerate(zip(requests, keys)):
            found = memo.get(key)
            if found is not None:
                sid, k = req.id.rsplit("#", 1)
                got[i] = Candidate(sid, source, int(k), found[0]["text"], found[0]["finish_reason"], None)
        todo = [i for i in range(len(requests)) if i not in got]
        step = max(o.llm.batch_size, o.llm.concurrency)  # a batch per call: progress, and a stop between calls
        with ctx.progress(len(requests), f"preference: sampling {source}", "replies") as bar:
            bar.update(len(got))
            backend = make_backend(llm) if todo else None
            for b in range(0, len(todo), step):
                check_stop()
                part = todo[b:b + step]
                for i, res in zip(part, backend.generate([requests[i] for i in part])):
                    sid, k = requests[i].id.rsplit("#", 1)
                    got[i] = Candidate(sid, source, int(k), res.text, res.finish_reason, res.error)
                memo.put([(keys[i], {"text": got[i].text, "finish_reason": got[i].finish_reason}, None)
                          for i in part if got[i].error is None])
                bar.update(len(part))
            del backend  # the model leaves memory before the next one loads
        memo.finish(keys)
        self.memo_stats[source] = memo.stats()
        return [got[i] for i in range(len(requests))]

    def _llm(self, ctx: StepContext, source: str) -> LLMConfig:
        """The backend config for one model: local backends load the artifact itself."""
        llm = ctx.options.llm
        if llm.backend == "openai":
            return llm
        sft = ctx.input_dir("sft.model")
        if source == "sft":
            return llm.model_copy(update={"model": str(sft)})
        return llm.model_copy(update={"model": str(_base_with_template(ctx, sft))})


def _user_pairs_problems(option: str, path: str) -> list[str]:
    """What stops read_user_pairs reading a file, and every row it would drop as malformed_pair."""
    import json

    from infuse.operators.preference.formats import parse_row

    text, problems = read_text(option, path)
    if text is None:
        return problems
    if Path(path).suffix == ".jsonl":
        rows = jsonl_rows(text)
    else:  # LLaMA-Factory's JSON: one list of pairs
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            return [f"{option}: {shown(path)} line {e.lineno}: {json_error(e)}"]
        if not isinstance(data, list):
            kind = "object" if isinstance(data, dict) else type(data).__name__
            return [f"{option}: {shown(path)} holds a JSON {kind}, not a list of pairs (or name a .jsonl file, one "
                    f"pair a line)"]
        rows = [(f"pair {i}", r) for i, r in enumerate(data)]
    if not rows:
        return [f"{option}: {shown(path)} has no pairs"]

    def lacks(where: str, row: Any) -> str | None:
        if parse_row(row) is not None:
            return None
        if not isinstance(row, dict):
            return f"a pair is a JSON object; got {type(row).__name__}"
        missing = [] if {"conversations", "instruction", "prompt"} & set(row) else [
            "a prompt (`conversations`, `instruction` or `prompt`)"]
        missing += [f"`{k}`" for k in ("chosen", "rejected") if k not in row]
        if missing:
            return "no " + ", no ".join(missing)
        return ("not a preference pair: the prompt's turns must alternate user and assistant and end with the user, "
                "and chosen and rejected must be non-empty and different")

    return row_problems(option, path, rows, lacks)


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
