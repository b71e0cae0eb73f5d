"""evaluate: every model the run produced, closed-book, against the same models with retrieval.

Questions: mix's held-out domain rows (short-answer facts when synthesis marks
them), k paraphrases of each (synthesis backend), the user's own eval file, and
the general rows (forgetting). Answers: base, cpt, sft, dpo (whichever exist),
base+RAG and <last tuned>+RAG (the ceiling of what the tuned model could know),
greedy, one chat template. Scores: strict (the headline: every value of the
reference and no rival one), contains, token F1, ROUGE-L, an optional LLM
judge, loss per token on general data; answers that only echo the question or
loop are flagged (`flag`) and score strict 0. Fails loudly when an eval
question is in the training data. Outputs every question/answer/score
(`scores`), the question set (`questions`) and a report with the table,
headline, per-fact table and bar charts.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field

from infuse.operators.common.base import Strict, key_dump, runtime, stable_hash
from infuse.operators.evaluate import answer as ans
from infuse.operators.evaluate import report as rep
from infuse.operators.evaluate.leakage import LeakageError, find_leaks, prompts_of
from infuse.operators.evaluate.metrics import degenerate, first_pass, score
from infuse.operators.evaluate.questions import Item, from_eval_rows, paraphrase, read_user_questions
from infuse.operators.llm import LLMConfig, make_backend
from infuse.operators.common.models import model_dir
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, optional, table
from infuse.tasks.framework.checks import jsonl_rows, read_text, row_problems, shown
from infuse.tasks.framework.item_memo import ItemMemo

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
CLOSED_BOOK = rep.CLOSED_BOOK


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


class EvaluateOptions(StepOptions):
    """Question set, answerers and scores (see README "Reading the evaluation")."""

    enabled: bool = runtime(False, description="off by default (it runs every model): turn it on after sft")
    max_domain_items: int = Field(200, ge=0, description="domain items asked (from mix's eval split)")
    max_general_items: int = Field(100, ge=0, description="general items asked (forgetting)")
    paraphrases: int = Field(3, ge=0, le=10, description="reworded variants per domain item (synthesis backend)")
    paraphrase_max_tokens: int = Field(160, ge=16, description="reply cap of one paraphrase request")
    user_questions: str | None = Field(None, description="your own eval JSONL: question, answer, doc?, aliases?")
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
    synth_llm: LLMConfig | None = Field(None, description="paraphrases and judge; empty = synthesize's llm")
    bootstrap: int = Field(1000, ge=0, description="bootstrap resamples for the CIs")
    seed: int = 0


class Evaluate(Step):
    name = "evaluate"
    stage = 130
    gpu = True  # with the vllm backend it wants the GPU
    description = "base, cpt, sft, dpo, base+RAG and tuned+RAG on held-out, paraphrased, user and general questions"
    inputs = (optional("eval"), optional("train"), optional("chunks"), optional("cpt.model"), optional("sft.model"),
              optional("dpo.model"), optional("merged"))
    outputs = {"scores": table(SCORES_SCHEMA, "every question, answer and score, per model"),
               "questions": table(QUESTIONS_SCHEMA, "the question set, paraphrases with their item")}
    Options = EvaluateOptions

    def config(self, recipe: Any) -> dict[str, Any]:
        cfg = {**super().config(recipe), "model": recipe.model.model_dump(mode="json")}
        if cfg.get("user_questions"):
            cfg["user_questions"] = str(Path(cfg["user_questions"]).resolve())
        synth = getattr(getattr(recipe, "steps", None), "synthesize", None)
        if cfg.get("synth_llm") is None and synth is not None:
            cfg["synth_llm"] = synth.llm.model_dump(mode="json")
        return cfg

    def key_config(self, cfg: dict[str, Any]) -> dict[str, Any]:
        out = super().key_config(cfg)
        out.pop("user_questions", None)  # its content is in the fingerprint, its place is not
        if cfg.get("synth_llm"):
            out["synth_llm"] = key_dump(LLMConfig.model_validate(cfg["synth_llm"]))
        return out

    def fingerprint(self, cfg: dict[str, Any]) -> dict[str, Any]:
        path = cfg.get("user_questions")
        if not path or not Path(path).is_file():
            return {"user_questions": path}
        return {"user_questions": hashlib.sha256(Path(path).read_bytes()).hexdigest()}

    def check(self, cfg: dict[str, Any]) -> list[str]:
        """The user question file: there, UTF-8, every line a JSON object with the fields evaluate reads (the
        step itself would only reject a bad line, silently lowering the count of user questions)."""
        path = cfg.get("user_questions")
        if not path:
            return []
        text, problems = read_text("user_questions", path)
        if text is None:
            return problems
        rows = jsonl_rows(text)
        if not rows:
            return [f"user_questions: {shown(path)} has no questions"]
        _, rejects = read_user_questions(path)  # the step's own reader says what a row lacks
        lacks = {f"line {r.id.rpartition('#')[2]}": r.message.partition(": ")[2] for r in rejects}
        return row_problems("user_questions", path, rows, lambda where, _: lacks.get(where))

    # ---- run --------------------------------------------------------------------------------------------------
    def run(self, ctx: StepContext) -> StepOutput:
        o: EvaluateOptions = ctx.options  # type: ignore[assignment]
        if not ctx.has("eval") and not o.user_questions:
            raise ValueError("evaluate needs mix's `eval` split or steps.evaluate.user_questions; neither is here")
        items, rejects = self._questions(ctx, o)
        notes: list[str] = []
        leaked = self._leakage(ctx, o, items, notes)
        answerers = self._answerers(ctx, o)
        if not [a for a in answerers if not a.rag]:
            raise ValueError("evaluate: no model to answer")
        rag_prompts, rag_chunks = self._rag(ctx, o, items, notes)
        if not rag_prompts:
            answerers = [a for a in answerers if not a.rag]
        jobs = [(a, [it for it in items if not a.rag or it.item_id in rag_prompts]) for a in answerers]
        total = sum(len(its) for _, its in jobs)
        scores: list[dict[str, Any]] = []
        memo = ItemMemo(ctx.store, self.name, "answers", fresh=ctx.fresh)
        keys: list[str] = []
        with ctx.progress(total, "evaluate: answers", "answers") as bar:
            for a, its in jobs:
                bar.update(0, model=a.name)
                results = self._answers(o, a, its, rag_prompts if a.rag else None, memo, keys, bar)
                for it, res in zip(its, results):
                    scores.append(self._scored(a, it, res, rag_chunks))
        memo.finish(keys)
        self.answer_memo = memo.stats()
        notes.append(f"answers: {memo.hits} kept from earlier runs (same model, prompt and settings), "
                     f"{memo.misses} generated")
        if o.loss:
            self._losses(ctx, o, answerers, items, scores)
        rubric = None
        if o.judge.enabled:
            rubric = self._judge(ctx, o, scores)
        return self._outputs(ctx, o, items, leaked, answerers, scores, rejects, notes, rubric)

    @staticmethod
    def _answers(o: EvaluateOptions, a: ans.Answerer, its: list[Item], prompts: dict[str, Any] | None,
                 memo: ItemMemo, keys: list[str], bar: Any) -> list[Any]:
        """Greedy answers of one model, each kept by (model content, prompt, settings): a kill or a rerun with
        more questions asks only what was not answered yet. Failed requests are not kept (asked again)."""
        from infuse.operators.llm import ChatResult

        setting = key_dump(o.llm)
        served = o.served.get(a.name) or o.served.get(a.name.removesuffix("+rag"))
        its_keys = [stable_hash(["eval-answer.v1", a.model_id or a.path, served, setting, o.max_new_tokens,
                                 (prompts or {}).get(it.item_id, it.prompt)])[:32] for it in its]
        keys += its_keys
        out: dict[int, Any] = {}
        for i, (it, k) in enumerate(zip(its, its_keys)):
            found = memo.get(k)
            if found is not None:
                out[i] = ChatResult(it.item_id, text=found[0]["text"], finish_reason=found[0]["finish_reason"])
        bar.update(len(out))
        todo = [i for i in range(len(its)) if i not in out]
        # vllm: one process per model (the GPU is whole for each, and freed), so one call; else in chunks kept
        # as they finish
        size = (len(todo) or 1) if o.llm.backend == "vllm" else max(8, 4 * o.llm.batch_size)
        for start in range(0, len(todo), size):
            part = todo[start:start + size]
            chunk = [its[i] for i in part]
            if o.llm.backend == "vllm":
                results = ans.isolated(ans.answer, a, chunk, o.llm, o.max_new_tokens, prompts, served)
                bar.update(len(results))
            else:
                results = ans.answer(a, chunk, o.llm, o.max_new_tokens, prompts, served=served,
                                     on_batch=lambda n: bar.update(n))
            out.update(zip(part, results))
            memo.put([(its_keys[i], {"text": r.text, "finish_reason": r.finish_reason}, None)
                      for i, r in zip(part, results) if r.ok])
        return [out[i] for i in range(len(its))]

    @staticmethod
    def _scored(a: ans.Answerer, it: Item, res: Any, rag_chunks: dict[str, list[str]]) -> dict[str, Any]:
        """One `scores` row: scored on the answer's first pass (before it repeats a sentence); a flagged answer
        (empty, echo, repeat) scores strict 0 whatever it contains."""
        text = first_pass(res.text if res.ok else "")
        s = score(text, it.reference, it.aliases, it.question)
        flag = degenerate(text, it.question)
        if flag:
            s["strict"] = 0.0
        return {"model": a.name, "item_id": it.item_id, "group": it.group, "question": it.question,
                "reference": it.reference, "answer": res.text if res.ok else None,
                "error": None if res.ok else f"{res.error_kind}: {res.error}", **s, "flag": flag, "judge": None,
                "loss_sum": None, "loss_tokens": None, "doc_id": it.doc_id, "lang": it.lang,
                "rag_chunks": rag_chunks.get(it.item_id, []) if a.rag else [], "finish_reason": res.finish_reason}

    def _questions(self, ctx: StepContext, o: EvaluateOptions) -> tuple[list[Item], list[Any]]:
        items, rejects = [], []
        if ctx.has("eval"):
            items, rejects = from_eval_rows(ctx.read("eval").to_pylist(), o.max_domain_items, o.max_general_items)
        domain = [it for it in items if it.group == "domain"]
        if o.paraphrases and domain:
            cache = ctx.work_dir() / "paraphrases.json"  # the LLM is asked once, even after a kill
            if cache.is_file():
                saved = json.loads(cache.read_text(encoding="utf-8"))
                para = [Item(**r) for r in saved["items"]]
                from infuse.operators.common.base import Reject

                prej = [Reject(**r) for r in saved["rejects"]]
            else:
                backend = make_backend(ctx.cfg["synth_llm"] or LLMConfig(backend="transformers"))
                with ctx.progress(len(domain), "evaluate: paraphrases", "items") as bar:
                    para, prej = paraphrase(domain, backend, o.paraphrases, o.paraphrase_max_tokens, seed=o.seed)
                    bar.update(len(domain))
                del backend
                tmp = cache.with_suffix(".tmp")
                tmp.write_text(json.dumps({"items": [p.row() for p in para],
                                           "rejects": [{"id": r.id, "reason": r.reason, "message": r.message,
                                                        "detail": r.detail} for r in prej]}, ensure_ascii=False),
                               encoding="utf-8")
                tmp.replace(cache)
            items += para
            rejects += prej
        if o.user_questions:
            user, urej = read_user_questions(o.user_questions)
            items += user
            rejects += urej
        if not items:
            raise ValueError("evaluate: no question to ask (the eval split has no domain or general rows, and no "
                             "user_questions file is set)")
        return items, rejects

    def _leakage(self, ctx: StepContext, o: EvaluateOptions, items: list[Item], notes: list[str]) -> set[str]:
        if not ctx.has("train"):
            notes.append("no `train` split in this run: the leakage check had nothing to compare with")
            return set()
        train = ctx.read("train", columns=["sample_id", "messages"]).to_pylist()
        checked = [it for it in items if it.group in CLOSED_BOOK]
        leaks = find_leaks(checked, prompts_of(train), o.leakage.n, o.leakage.threshold)
        if leaks and o.leakage.action == "fail":
            raise LeakageError(leaks, o.leakage.n, o.leakage.threshold)
        if leaks:
            notes.append(f"{len(leaks)} eval question(s) are in the training data (leakage.action: warn): flagged "
                         f"`leaked` in `questions`; e.g. {leaks[0].line()}")
            ctx.log.warning(str(LeakageError(leaks, o.leakage.n, o.leakage.threshold)))
        return {lk.item_id for lk in leaks}

    def _answerers(self, ctx: StepContext, o: EvaluateOptions) -> list[ans.Answerer]:
        """base (with the tuned models' template), then cpt, sft, dpo as plain directories, then base+RAG and the
        last tuned model (dpo, else sft, else cpt) with the same retrieval: closed-book over tuned+RAG says how
        much of what the model could answer with the pages it answers from memory."""
        work = ctx.work_dir() / "models"
        base = model_dir(ctx.cfg["model"].get("path"))
        merged = self._merged(ctx)
        tuned: list[ans.Answerer] = []
        dirs: dict[str, Path] = {}
        for name in ("cpt", "sft", "dpo"):
            if not ctx.has(f"{name}.model"):
                continue
            src = ctx.input_dir(f"{name}.model")
            path = merged.get(name)
            if path is None:
                path = ans.loadable(src, work / name, self._root_base(ctx, src, base))
            dirs[name] = Path(path)
            model_id = f"{ctx.input(f'{name}.model').sha256}:{'merged' if name in merged else 'adapter'}"
            tuned.append(ans.Answerer(name, str(path), model_id=model_id))
        template_from = dirs.get("sft") or dirs.get("dpo") or dirs.get("cpt")
        view = ans.base_view(base, work / "base", template_from, ctx.cfg["model"].get("chat_template"))
        view_id = ans.view_id(view)
        out = [ans.Answerer("base", str(view), model_id=view_id), *tuned]
        if o.rag.enabled and ctx.has("chunks"):
            out.append(ans.Answerer("base+rag", str(view), rag=True, model_id=view_id))
            if tuned:
                last = tuned[-1]
                out.append(ans.Answerer(f"{last.name}+rag", last.path, rag=True, model_id=last.model_id))
        return out

    @staticmethod
    def _root_base(ctx: StepContext, src: Path, base: str) -> Path:
        """The plain model under an adapter (a DPO adapter's SFT model under `sft/` goes back to it too): the
        cpt model when the chain started there, else the recipe's base model."""
        from infuse.operators.train.card import read_card

        card = read_card(src) or {}
        if card.get("layout") == "adapter+sft" and (src / "sft").is_dir():
            card = read_card(src / "sft") or {}
        source = (card.get("base") or {}).get("source")
        if source == "cpt.model" and ctx.has("cpt.model"):
            return ctx.input_dir("cpt.model")
        return Path(base)

    def _merged(self, ctx: StepContext) -> dict[str, Path]:
        """The run's merged model stands in for the adapter it was merged from (no second merge)."""
        if not ctx.has("merged"):
            return {}
        from infuse.operators.train.card import fingerprint, read_card

        path = ctx.input_dir("merged")
        want = ((read_card(path) or {}).get("merged_from") or {}).get("fingerprint")
        for name in ("dpo", "sft", "cpt"):
            if ctx.has(f"{name}.model") and want and fingerprint(ctx.input_dir(f"{name}.model")) == want:
                return {name: path}
        return {}

    def _rag(self, ctx: StepContext, o: EvaluateOptions, items: list[Item],
             notes: list[str]) -> tuple[dict[str, list[dict[str, str]]], dict[str, list[str]]]:
        if not (o.rag.enabled and ctx.has("chunks")):
            if o.rag.enabled:
                notes.append("no `chunks` in this run: no base+RAG or tuned+RAG row")
            return {}, {}
        from infuse.operators.common.models import embed
        from infuse.operators.synthesize.rag import build_index

        chunks = ctx.read("chunks", columns=["chunk_id", "text"]).to_pylist()
        if not chunks:
            return {}, {}
        text = {c["chunk_id"]: c["text"] for c in chunks}
        index = build_index(chunks, embed)
        asked = [it for it in items if it.group in CLOSED_BOOK]
        hits = index.top_k(embed([it.question for it in asked]), o.rag.k) if asked else []
        prompts, ids = {}, {}
        for it, found in zip(asked, hits):
            ids[it.item_id] = [cid for cid, _ in found]
            prompts[it.item_id] = ans.rag_prompt(it, [text[c] for c in ids[it.item_id]], o.rag.max_context_chars)
        return prompts, ids

    def _losses(self, ctx: StepContext, o: EvaluateOptions, answerers: list[ans.Answerer], items: list[Item],
                scores: list[dict[str, Any]]) -> None:
        general = [it for it in items if it.group == "general"]
        if not general:
            return
        convs = [[*it.prompt, {"role": "assistant", "content": it.reference}] for it in general]
        device = o.llm.device if o.llm.backend == "transformers" else "auto"
        at = {(s["model"], s["item_id"]): s for s in scores}
        for a in answerers:
            if a.rag:
                continue
            losses = (ans.isolated(ans.token_loss, a.path, convs, device) if o.llm.backend == "vllm"
                      else ans.token_loss(a.path, convs, device))
            for it, (nll, n) in zip(general, losses):
                s = at.get((a.name, it.item_id))
                if s is not None and n:
                    s["loss_sum"], s["loss_tokens"] = nll, n

    def _judge(self, ctx: StepContext, o: EvaluateOptions, scores: list[dict[str, Any]]) -> str:
        from infuse.operators.evaluate.judge import judge, rubric

        backend = make_backend(ctx.cfg["synth_llm"] or LLMConfig(backend="transformers"))
        grades = judge(scores, backend, o.judge.max_tokens)
        for s, g in zip(scores, grades):
            s["judge"] = None if g is None else float(g)
        langs = sorted({s["lang"] for s in scores} or {"en"})
        return "\n\n".join(rubric(lang) for lang in langs)

    def _outputs(self, ctx: StepContext, o: EvaluateOptions, items: list[Item], leaked: set[str],
                 answerers: list[ans.Answerer], scores: list[dict[str, Any]], rejects: list[Any], notes: list[str],
                 rubric: str | None) -> StepOutput:
        models = [a.name for a in answerers]
        tuned = [a.name for a in answerers if not a.rag and a.name != "base"]
        rows = rep.summary(scores, models, o.bootstrap, o.seed)
        head = rep.headline(rows, tuned)
        closed = rep.closed_book(rows, tuned)
        forget = rep.forgetting(rows, tuned)
        docs = rep.per_document(scores, models)
        facts = rep.per_fact(scores, items, models)
        flags = rep.flag_counts(scores, models)
        failed = sum(1 for s in scores if s["error"])
        if failed:
            notes.append(f"{failed} answer(s) failed (scored 0; see `error` in `scores`)")
        qrows = [{**{k: v for k, v in it.row().items() if k in QUESTIONS_SCHEMA.names}, "leaked": it.item_id in leaked}
                 for it in items]
        q_ref = ctx.write_table("questions", qrows)
        s_ref = ctx.write_table("scores", scores)
        md = rep.markdown(rows, head, forget, docs, notes, rubric, facts=facts, flags=flags, models=models)
        groups = {g: sum(1 for it in items if it.group == g) for g in ("domain", "paraphrase", "user", "general")}
        return StepOutput({"scores": s_ref, "questions": q_ref}, rejects, StepReport(
            rows_in=len(items) + len(rejects), kept=len(items), unit_in="questions", unit_out="questions",
            markdown=md, tables={"table": rows, "forgetting": forget, "per-document": docs, "per-fact": facts},
            images={"accuracy": rep.bar_png(rows, "strict"), "contains": rep.bar_png(rows, "contains"),
                    "f1": rep.bar_png(rows, "f1")},
            stats={"table": rows, "headline": head, "closed_book": closed, "forgetting": forget, "models": models,
                   "groups": groups, "flags": flags, "answers": len(scores), "failed_answers": failed,
                   "answer_memo": getattr(self, "answer_memo", {})}))
