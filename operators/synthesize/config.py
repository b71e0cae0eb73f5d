"""`SynthConfig` and `LLMOptions`: the `synthesize` section of a recipe. Unknown keys are errors.

The strategy names it accepts are those registered (see strategy.py); the
tuples LLM_STRATEGIES, TEMPLATE_STRATEGIES and STRATEGIES are read from the
registry whenever they are asked for (the strategies import this module, so it
cannot import them first).
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from infuse.operators.common.base import Strict, runtime
from infuse.operators.common.formats import ALIASES, FAMILY_KEYS, family
from infuse.operators.llm import LLMConfig


def __getattr__(name: str) -> Any:
    """LLM_STRATEGIES, TEMPLATE_STRATEGIES and STRATEGIES (LLM ones first), from the registry."""
    if name not in ("LLM_STRATEGIES", "TEMPLATE_STRATEGIES", "STRATEGIES"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from infuse.operators.synthesize import strategy

    return {"LLM_STRATEGIES": strategy.llm_names, "TEMPLATE_STRATEGIES": strategy.template_names,
            "STRATEGIES": strategy.all_names}[name]()


def _default_by_format() -> dict[str, list[str]]:
    return {
        "markdown": ["facts", "qa", "section_template"],
        "html": ["facts", "qa", "section_template"],
        "docx": ["facts", "qa", "section_template"],
        "json": ["facts"],
        "jsonl": ["facts"],
        "csv": ["facts"],
        "xlsx": ["facts"],
        "code": ["code_tasks"],
        "log": ["log_tasks"],
        "default": ["facts", "qa"],
    }


class ParaphraseOptions(Strict):
    enabled: bool = True
    k: int = Field(2, ge=1, le=10, description="paraphrased variants per QA row")
    answers: bool = Field(True, description="paraphrase the answer too; false keeps it as generated")
    apply_to: list[str] = Field(default_factory=lambda: ["qa", "rag", "self_instruct"])


class RagOptions(Strict):
    top_k: int = Field(3, ge=1, le=20, description="retrieved chunks per question, besides the chunk itself")
    max_context_chars: int = Field(4000, ge=200)


class SelfInstructOptions(Strict):
    enabled: bool = False
    n: int = Field(3, ge=1, le=20, description="instructions per chunk")


class EvolInstructOptions(Strict):
    enabled: bool = False
    depth: bool = True
    breadth: bool = True
    apply_to: list[str] = Field(default_factory=lambda: ["qa"])


PerLang = str | dict[Literal["zh", "en"], str]


class IdentityOptions(Strict):
    enabled: bool = False
    name: PerLang = Field("", description="the model's name: one string, or one per language {zh: 莲花助手, en: LotusBot}")
    author: PerLang = Field("", description="who made it: one string, or one per language")
    langs: list[Literal["zh", "en"]] = Field(default_factory=lambda: ["zh", "en"])

    @model_validator(mode="after")
    def _names(self) -> "IdentityOptions":
        if not self.enabled:
            return self
        for what in ("name", "author"):
            value = getattr(self, what)
            missing = [lang for lang in self.langs if not self.value(what, lang)]
            if not missing:
                continue
            if isinstance(value, dict) and any(v.strip() for v in value.values()):
                raise ValueError(f"identity.{what} has no {' or '.join(missing)} entry; give one per language "
                                 f"in identity.langs ({', '.join(self.langs)}), or one string for all")
            raise ValueError("identity.enabled needs identity.name and identity.author")
        return self

    def value(self, what: str, lang: str) -> str:
        """identity.name or .author in `lang` (a plain string is every language's)."""
        v = getattr(self, what)
        return (v.get(lang, "") if isinstance(v, dict) else v).strip()


class RecordOptions(Strict):
    title_field: str | None = Field(None, description="field whose value names the record; else the first of title_fields, else the document title")
    title_fields: list[str] = Field(default_factory=lambda: ["title", "name", "标题", "名称", "名字", "姓名", "函数名", "函数"])
    question_templates: dict[str, str] = Field(default_factory=dict, description="field name -> question, e.g. '介绍一下C语言函数{title}的语法。'")
    skip_fields: list[str] = Field(default_factory=list)
    min_chars: int = Field(1, ge=1, description="fields with shorter text get no question")
    introduce: bool = Field(True, description="also one sample answering with every field of the record")
    introduce_template: str | None = Field(None, description="its question, e.g. '介绍一下C语言函数{title}。'; "
                                                             "default: the prompt's (介绍一下{title}。 / Tell me about {title}.)")


class FactsOptions(Strict):
    """The `facts` strategy: every fact asked in several phrasings (see operators/synthesize/strategies/facts.py)."""

    phrasings: int = Field(4, ge=2, le=6, description="questions per fact and language (one is held out for "
                                                      "the facts mix puts in eval)")
    records: bool = Field(True, description="one fact per record field (JSON, CSV, XLSX rows)")
    tables: bool = Field(True, description="one fact per table cell, named by its row's first cell")
    sentences: bool = Field(True, description="one fact per sentence that states a number, date or code")
    faq: bool = Field(True, description="headings that are questions, answered by their section")
    introduce: bool = Field(True, description="also 'Tell me about X' per record, answered with every field")
    skip_fields: list[str] = Field(default_factory=list)
    max_short_chars: int = Field(40, ge=1, description="values up to this long are short gold answers (eval)")
    min_sentence_chars: int = Field(8, ge=1)
    max_sentence_chars: int = Field(240, ge=20)
    max_answer_chars: int = Field(400, ge=50, description="an FAQ answer is cut to this")
    max_facts_per_doc: int = Field(400, ge=1)


class SectionOptions(Strict):
    min_chars: int = Field(20, ge=1, description="sections with a shorter body get no question")
    max_chars: int | None = Field(None, ge=50, description="longer bodies are cut at a paragraph or sentence end; "
                                                           "default answer_target_chars")
    subsections: bool = Field(True, description="a heading's answer runs on through its sub-sections (up to "
                                                "max_chars); false: only the text before its first sub-heading")
    separator: str = Field(" > ", description="joins the heading path in the question")


class ContinuationOptions(Strict):
    author: str | None = Field(None, description="used when the document metadata has no author")
    previous_chars: int = Field(300, ge=20, description="tail of the previous passage shown in the prompt")


class CodeOptions(Strict):
    tasks: list[Literal["function", "explain", "translate"]] = Field(default_factory=lambda: ["function", "explain"])
    target_lang: str = Field("Python", description="translate task target language")


class LogOptions(Strict):
    tasks: list[Literal["extract", "summary"]] = Field(default_factory=lambda: ["extract", "summary"])


class DialogueOptions(Strict):
    min_turns: int = Field(2, ge=2, le=8, description="a reply with fewer turns is malformed (retried)")
    max_turns: int = Field(4, ge=2, le=8, description="turns beyond this are dropped")

    @model_validator(mode="after")
    def _order(self) -> "DialogueOptions":
        if self.min_turns > self.max_turns:
            raise ValueError(f"dialogue.min_turns {self.min_turns} is above max_turns {self.max_turns}")
        return self


class SummaryOptions(Strict):
    max_source_chars: int = Field(4000, ge=200, description="the largest section summarised whole; a larger "
                                                            "one is summarised by its sub-sections")
    min_chars: int = Field(200, ge=20, description="sections with less text are not summarised")


class AtomicFactsOptions(Strict):
    max_facts: int = Field(20, ge=1, le=100, description="facts per chunk")


class RewriteOptions(Strict):
    k: int = Field(2, ge=1, le=10, description="rewordings per chunk, one request each")


class RaftOptions(Strict):
    questions: int = Field(2, ge=1, le=20, description="questions per chunk")
    distractors: int = Field(3, ge=1, le=10, description="chunks of other documents shown beside the source")
    max_doc_chars: int = Field(1500, ge=100, description="each shown chunk is cut to this")


class SynthConfig(Strict):
    by_format: dict[str, list[str]] = Field(default_factory=_default_by_format,
                                            description="strategies per document format; 'default' for the rest")
    questions_per_chunk: int = Field(5, ge=1, le=30)
    answer_target_chars: int = Field(500, ge=50)
    lang: Literal["auto", "zh", "en"] = Field("auto", description="prompt language; auto = by the chunk's CJK ratio")
    zh_threshold: float = Field(0.2, ge=0, le=1, description="CJK share of letters at which a chunk counts as Chinese")
    min_chunk_chars: int = Field(20, ge=1, description="LLM strategies skip shorter chunks")
    system_message: str | None = Field(None, description="system turn put into every sample; none when empty")
    paraphrase: ParaphraseOptions = ParaphraseOptions()
    rag: RagOptions = RagOptions()
    self_instruct: SelfInstructOptions = SelfInstructOptions()
    evol_instruct: EvolInstructOptions = EvolInstructOptions()
    identity: IdentityOptions = IdentityOptions()
    facts: FactsOptions = FactsOptions()
    record: RecordOptions = RecordOptions()
    section: SectionOptions = SectionOptions()
    continuation: ContinuationOptions = ContinuationOptions()
    code: CodeOptions = CodeOptions()
    log: LogOptions = LogOptions()
    dialogue: DialogueOptions = DialogueOptions()
    summary: SummaryOptions = SummaryOptions()
    atomic_facts: AtomicFactsOptions = AtomicFactsOptions()
    rewrite: RewriteOptions = RewriteOptions()
    raft: RaftOptions = RaftOptions()
    max_tokens: int = Field(2048, ge=16)
    temperature: float = Field(0.7, ge=0, le=2)
    prompt_overrides: dict[str, str] = Field(default_factory=dict,
                                             description="prompt name (or name.lang) -> file replacing the packaged prompt")
    shard_size: int = Field(64, ge=1, description="work items per shard")
    commit_every: int = runtime(16, ge=1, description="commit a shard's finished items every this many items, "
                                                      "so a kill loses at most that much work")
    commit_every_s: float = runtime(60.0, gt=0, description="...or sooner: slow items make smaller groups, so a "
                                                            "commit comes about this often")
    max_attempts: int = Field(2, ge=1, le=5, description="tries per request whose output is malformed")

    @model_validator(mode="after")
    def _known(self) -> "SynthConfig":
        from infuse.operators.synthesize.strategy import all_names

        known = all_names()
        for fmt, names in self.by_format.items():
            bad = [n for n in names if n not in known]
            if bad:
                raise ValueError(f"by_format.{fmt}: unknown strategy {bad}; known: {', '.join(known)}")
        for opt, names in (("paraphrase", self.paraphrase.apply_to), ("evol_instruct", self.evol_instruct.apply_to)):
            bad = [n for n in names if n not in known]
            if bad:
                raise ValueError(f"{opt}.apply_to: unknown strategy {bad}")
        return self

    @classmethod
    def part_of(cls, options: BaseModel) -> "SynthConfig":
        """The SynthConfig fields of a larger options model (the step's): only they shape the item ids."""
        return cls.model_validate(options.model_dump(include=set(cls.model_fields)))

    def strategies_for(self, fmt: str) -> list[str]:
        """The strategies of a document format: its own entry, else its family's (code/log/record), else default."""
        fmt = (fmt or "").lower()
        for name in (fmt, ALIASES.get(fmt)):
            if name and name in self.by_format:
                return list(self.by_format[name])
        fam_key = FAMILY_KEYS.get(family(fmt))
        if fam_key in self.by_format:
            return list(self.by_format[fam_key])
        return list(self.by_format.get("default", []))


class LLMOptions(Strict):
    """The LLM that runs the strategies, and a cap on its work. Not part of SynthConfig: item ids (and so
    the item memo) do not depend on it; the memo keys its answers by the LLM on their own."""

    llm: LLMConfig = Field(default_factory=lambda: LLMConfig(backend="transformers"),
                           description="backend: transformers (local), openai (any compatible endpoint) or vllm")
    max_llm_items: int | None = Field(None, ge=0, description="cap on LLM work items (templates are not capped)")
