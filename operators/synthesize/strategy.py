"""The strategy contract, and the one registry of strategies and augmenters.

A strategy is one file in `strategies/`: a `Strategy` subclass with a `name`,
which registers itself by being defined (as steps do in tasks/framework/step.py).
It says which work items a document gives it (`plan`), what they cost
(`estimate`) and how an item becomes drafts (`run`: a generator yielding
request batches; a template strategy writes `make` instead and asks nothing).
An `Augmenter` (paraphrase, evol_instruct) rewrites the drafts of the
strategies its options name. A subclass defined outside `strategies/` (in a
recipe's plugin file, say) registers the same way when its module is imported;
from then on SynthConfig accepts its name. (Only the modules of `strategies/`
are in the synthesize step's code version.)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from infuse.operators.common.base import stable_hash
from infuse.operators.common.lang import estimate_tokens
from infuse.operators.prompts import load_prompt
from infuse.operators.synthesize.config import SynthConfig
from infuse.operators.synthesize.core import Context, Gen, Track, text_lang
from infuse.operators.synthesize.schema import Draft, WorkItem, item_id_for

REGISTRY: dict[str, Strategy] = {}
AUGMENTERS: dict[str, Augmenter] = {}
Q_CHARS = 40  # the length of a generated question, for estimates


@dataclass
class DocSource:
    """One document as planning sees it (`doc` is None when only its chunks came)."""

    doc_id: str
    doc: dict[str, Any] | None
    chunks: list[dict[str, Any]]  # every chunk, by (start, end)
    prose: list[dict[str, Any]]  # the chunks that take the document's strategies
    blocks: list[dict[str, Any]]  # code blocks of a prose document: they take the code strategies
    lang: str
    format: str


@dataclass
class Cost:
    """What an item will ask of the LLM, and the samples it will give."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    samples: int = 0

    def add(self, other: Cost) -> None:
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.samples += other.samples


class Pricer:
    """Token counts for one item's estimate: its source, text to be generated, and a prompt's fixed text."""

    def __init__(self, cfg: SynthConfig, item: WorkItem, source: str | None,
                 counter: Callable[[str], int] | None, system: Callable[[str, str], int]) -> None:
        self.cfg, self.lang, self.counter, self._system = cfg, item.lang, counter, system
        self.src = self.tokens(source) if source is not None else self.gen(item.text_chars)

    def tokens(self, text: str) -> int:
        return self.counter(text) if self.counter else estimate_tokens(text)

    def gen(self, chars: int) -> int:
        """Tokens of `chars` characters of generated text in the item's language, when no text exists yet."""
        if self.counter:
            zh = self.lang == "zh"
            sample = ("中" if zh else "word ") * max(1, chars // (1 if zh else 5))
            return self.counter(sample[:chars])
        return int(round(chars / 1.5)) if self.lang == "zh" else int(round(chars / 4.0))

    def system(self, prompt: str) -> int:
        """Tokens of everything the prompt sends besides its values."""
        return self._system(prompt, self.lang)

    def one_call(self, prompt: str, completion: int, samples: int) -> Cost:
        """One request with the prompt and the source, answered with `completion` tokens."""
        return Cost(1, self.system(prompt) + self.src, completion, samples)


def prompt_version(cfg: SynthConfig, name: str, lang: str) -> str:
    """The version of the prompt an item renders: the recipe's override file when it names one."""
    override = cfg.prompt_overrides.get(f"{name}.{lang}") or cfg.prompt_overrides.get(name)
    return load_prompt(name, lang, override).version


def settings_hash(cfg: SynthConfig) -> str:
    """Config that changes what an item produces (not how it is sharded) goes into the item id."""
    return stable_hash(cfg.model_dump(exclude={"shard_size", "by_format"}))[:12]


class Strategy:
    """Base of every strategy. By default it asks an LLM, one item per chunk of its documents' prose."""

    name: ClassVar[str] = ""
    # the place in the listings (recipe errors, select's exempt default); a new strategy goes last
    order: ClassVar[int] = 1000
    llm: ClassVar[bool] = True  # asks an LLM: capped by max_llm_items, kept in the item memo
    prompts: ClassVar[tuple[str, ...]] = ()  # the prompts it renders; their versions are in its item ids
    retrieves: ClassVar[bool] = False  # reads the corpus' chunk index (the step embeds the corpus once)

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.__dict__.get("name"):
            REGISTRY[cls.name] = cls()  # a module imported again (a plugin reloaded) replaces its own

    # ---- planning ------------------------------------------------------------------
    def plan(self, cfg: SynthConfig, source: DocSource) -> list[WorkItem]:
        """The items one document gives this strategy."""
        return self.chunk_items(cfg, source, source.prose)

    def joins(self, cfg: SynthConfig, named: list[str]) -> bool:
        """Whether it joins a format's strategies without being named there."""
        return False

    def standalone_items(self, cfg: SynthConfig) -> list[WorkItem]:
        """Items about no document, planned after every document's."""
        return []

    def chunk_items(self, cfg: SynthConfig, source: DocSource, chunks: list[dict[str, Any]]) -> list[WorkItem]:
        """One item per chunk long enough, in the language of the chunk's prose (else the document's)."""
        return [self.item(cfg, c["chunk_id"], source.doc_id, text_lang(cfg, c["text"], source.lang), source.format,
                          text_chars=len(c["text"]))
                for c in chunks if len(c["text"].strip()) >= cfg.min_chunk_chars]

    def item(self, cfg: SynthConfig, chunk_id: str, doc_id: str, lang: str, fmt: str,
             params: dict[str, Any] | None = None, text_chars: int = 0, expected: int = 0) -> WorkItem:
        """A work item of this strategy; its id covers the strategy, source, prompt versions and settings."""
        pv = self.prompt_versions(cfg, lang)
        params = dict(params or {})
        params["settings"] = settings_hash(cfg)
        key = chunk_id or doc_id or params.get("key", "")
        return WorkItem(item_id_for(self.name, key, pv, params), self.name, chunk_id, doc_id, lang, fmt, pv, params,
                        text_chars, expected)

    def prompt_versions(self, cfg: SynthConfig, lang: str) -> str:
        """Its prompts' versions, then those of the augmenters that apply to it."""
        names = list(self.prompts)
        for aug in augmenters():
            if aug.applies(cfg, self.name):
                names += aug.prompt_names(cfg)
        return "+".join(prompt_version(cfg, n, lang) for n in names)

    # ---- cost and work -------------------------------------------------------------
    def estimate(self, item: WorkItem, price: Pricer) -> Cost:
        """Requests and tokens of one item (without retries); by default the samples planned, no request."""
        return Cost(samples=item.expected_samples)

    def run(self, item: WorkItem, ctx: Context, track: Track) -> Gen:
        """Yield request batches, receive their results; return the item's drafts."""
        raise NotImplementedError


class DocumentStrategy(Strategy):
    """One item per document that gives it something to do; each sample's language follows its own text."""

    def plan(self, cfg: SynthConfig, source: DocSource) -> list[WorkItem]:
        if source.doc is None:
            return []
        n = self.expected(source.doc, cfg)
        if not n:
            return []
        return [self.item(cfg, "", source.doc_id, source.lang, source.format, text_chars=len(source.doc["text"]),
                          expected=n)]

    def expected(self, doc: dict[str, Any], cfg: SynthConfig) -> int:
        """The samples (or sections) the document gives; 0 plans no item."""
        raise NotImplementedError

    def prompt_versions(self, cfg: SynthConfig, lang: str) -> str:
        """With `lang: auto` a sample may be in either language, so both languages' prompts shape the item."""
        if cfg.lang == "auto":
            return "+".join(prompt_version(cfg, n, lg) for lg in ("zh", "en") for n in self.prompts)
        return super().prompt_versions(cfg, lang)


class Template:
    """Mixin of the strategies that ask no LLM: `make` writes the drafts from the source text alone.
    It goes first among the bases (`class Facts(Template, DocumentStrategy)`), so its `llm` and `run` win."""

    llm: ClassVar[bool] = False

    def run(self, item: WorkItem, ctx: Context, track: Track) -> Gen:
        yield from ()  # no request
        return self.make(item, ctx, track)

    def make(self, item: WorkItem, ctx: Context, track: Track) -> list[Draft]:
        raise NotImplementedError


class Augmenter:
    """Rewrites the drafts of the strategies its options (`cfg.<name>`: enabled, apply_to) name."""

    name: ClassVar[str] = ""
    order: ClassVar[int] = 1000  # augmenters run, and their prompts are versioned, in this order

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.__dict__.get("name"):
            AUGMENTERS[cls.name] = cls()

    def applies(self, cfg: SynthConfig, strategy: str) -> bool:
        opts = getattr(cfg, self.name)
        return bool(opts.enabled) and strategy in opts.apply_to

    def prompt_names(self, cfg: SynthConfig) -> list[str]:
        raise NotImplementedError

    def estimate(self, price: Pricer, base_samples: int) -> Cost:
        raise NotImplementedError

    def augment(self, drafts: list[Draft], item: WorkItem, ctx: Context, track: Track) -> Gen:
        raise NotImplementedError


def _load() -> None:
    """Import the built-in strategies: each registers itself."""
    import infuse.operators.synthesize.strategies  # noqa: F401


def strategies() -> list[Strategy]:
    """Every registered strategy, in listing order."""
    _load()
    return sorted(REGISTRY.values(), key=lambda s: s.order)


def augmenters() -> list[Augmenter]:
    _load()
    return sorted(AUGMENTERS.values(), key=lambda a: a.order)


def strategy(name: str) -> Strategy | None:
    _load()
    return REGISTRY.get(name)


def asks_llm(name: str) -> bool:
    """Whether items of this strategy ask an LLM (an unknown name does not)."""
    found = strategy(name)
    return found is not None and found.llm


def llm_names() -> tuple[str, ...]:
    return tuple(s.name for s in strategies() if s.llm)


def template_names() -> tuple[str, ...]:
    return tuple(s.name for s in strategies() if not s.llm)


def all_names() -> tuple[str, ...]:
    """Every strategy's name, those that ask an LLM first."""
    return llm_names() + template_names()
