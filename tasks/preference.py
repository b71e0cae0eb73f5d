"""preference: (prompt, chosen, rejected) pairs for dpo, from the training questions and the models' own replies.

Prompts are mix's domain `train` samples (never an eval question); chosen is the grounded reference answer;
rejected is a sampled reply of the base and/or SFT model (any LLM backend) that fails a fact's strict score, or
a fluent ungrounded one (operators/preference/pairs.py). User pairs are mixed in; every raw sample is kept in
`samples`, every dropped prompt is a reject, and the pairs are exported for LLaMA-Factory, ms-swift and OpenAI.
The work is operators/preference/run.py's; the step resolves the models and passes in memo, progress and folder.
"""
from __future__ import annotations


from infuse.operators.common.base import runtime
from infuse.operators.llm import LLMConfig
from infuse.operators.preference.config import PreferenceConfig
from infuse.operators.preference.export import report_note
from infuse.operators.preference.pairs import PAIR_SCHEMA, SAMPLE_SCHEMA
from infuse.operators.preference.run import run_preference
from infuse.operators.preference.sampling import ReplyModel
from infuse.operators.train.tokenizer import base_with_tokenizer
from infuse.tasks.framework import training
from infuse.tasks.framework.item_memo import ItemMemo
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, optional, report, table


class PreferenceOptions(StepOptions, PreferenceConfig):
    """Where rejected replies come from, how many, and which user pairs are mixed in."""

    enabled: bool = runtime(False, description="off by default, like sft and dpo: turn all three on")


class Preference(Step):
    name = "preference"
    stage = 100
    description = ("preference pairs: chosen = grounded reference, rejected = a model's reply that fails a fact's "
                   "strict score, or a fluent ungrounded one; exported for LLaMA-Factory, ms-swift, OpenAI")
    inputs = ("train", optional("eval"), "chunks", "sft.model", optional(training.CPT_MODEL))
    outputs = {"pairs": table(PAIR_SCHEMA, "prompt, chosen, rejected"),
               "samples": table(SAMPLE_SCHEMA, "every sampled reply with its scores and verdict"),
               "exports": report("the pairs as LLaMA-Factory, ms-swift and OpenAI DPO files")}
    Options = PreferenceOptions
    uses_model = True  # the base model, when replies are sampled from it

    def run(self, ctx: StepContext) -> StepOutput:
        o: PreferenceOptions = ctx.options  # type: ignore[assignment]
        chunks = ctx.read("chunks", columns=["chunk_id", "text"])
        sources = dict(zip(chunks.column("chunk_id").to_pylist(), chunks.column("text").to_pylist()))
        evals = ctx.read("eval").to_pylist() if ctx.has("eval") else []

        def memo(model: str) -> ItemMemo:
            return ItemMemo(ctx.store, self.name, f"samples-{model}", fresh=ctx.fresh)

        with ctx.dir_output("exports") as out:
            res = run_preference(ctx.read("train").to_pylist(), evals, sources, o, self._models(ctx), memo,
                                 ctx.progress, out.path)
            out.describe = f"exports: {', '.join(o.exports)} ({len(res.exports)} files)"
        pairs, samples = ctx.write_table("pairs", res.pairs), ctx.write_table("samples", res.samples)
        rep = res.report
        return StepOutput({"pairs": pairs, "samples": samples, "exports": out.ref}, res.rejects, StepReport(
            rows_in=rep.rows_in, kept=rep.kept, unit_in="prompts", unit_out="pairs", tables=rep.tables,
            markdown=rep.markdown + report_note(res.exports, o.exports, ctx.store.display(out.ref.path)),
            stats=rep.stats))

    def _models(self, ctx: StepContext) -> list[ReplyModel]:
        sha = ctx.input("sft.model").sha256
        return [ReplyModel(source, self._llm(ctx, source), sha) for source in ctx.options.sample_from]

    def _llm(self, ctx: StepContext, source: str) -> LLMConfig:
        """The backend config for one model: local backends load the artifact itself (the base: its weights
        with the SFT tokenizer, so it is asked in the same chat template)."""
        llm = ctx.options.llm
        if llm.backend == "openai":
            return llm
        folder = ctx.input_dir("sft.model")
        if source == "base":
            folder = base_with_tokenizer(training.base_model(ctx)[0], ctx.work_dir() / "base-view", folder)
        return llm.model_copy(update={"model": str(folder)})

