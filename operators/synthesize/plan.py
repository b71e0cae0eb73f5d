"""plan + estimate: the work items of a synthesis run and what they will cost, before any call.

`infuse plan RECIPE` prints `format_estimate(estimate(plan(...)))`.
"""
from __future__ import annotations

from typing import Any, Callable

import pyarrow as pa

from infuse.operators.common.base import stable_hash
from infuse.operators.prompts import load_prompt
from infuse.operators.common.formats import family
from infuse.operators.synthesize import facts, record_template, section_template, summary
from infuse.operators.synthesize.config import LLM_STRATEGIES, SynthConfig
from infuse.operators.synthesize.core import rows_by_key, text_lang
from infuse.operators.common.lang import detect_lang, estimate_tokens
from infuse.operators.synthesize.schema import WorkItem, item_id_for

# prompts each strategy uses (augmenters are added when they apply)
STRATEGY_PROMPTS = {
    "qa": ["qa_pairs"],
    "rag": ["rag_questions", "rag_answer"],
    "self_instruct": ["self_instruct"],
    "code_tasks": ["code_tasks"],
    "log_tasks": ["log_tasks"],
    "facts": [],
    "record_template": ["record_template"],
    "section_template": ["section_template"],
    "continuation": ["continuation"],
    "identity": ["identity"],
    "dialogue": ["dialogue"],
    "summary": ["summary"],
    "atomic_facts": ["atomic_facts"],
    "rewrite": ["rewrite"],
    "raft": ["rag_questions", "raft_answer"],
}
# strategies that choose each sample's language from its own text, so both languages' prompts shape them
PER_SAMPLE_LANG = ("facts", "record_template", "section_template", "summary")
# strategies that take a whole document (one item per document) rather than one chunk
DOC_STRATEGIES = ("facts", "record_template", "section_template", "summary")


def _version(cfg: SynthConfig, name: str, lang: str) -> str:
    override = cfg.prompt_overrides.get(f"{name}.{lang}") or cfg.prompt_overrides.get(name)
    return load_prompt(name, lang, override).version


def _prompt_versions(cfg: SynthConfig, strategy: str, lang: str) -> str:
    if strategy == "facts":  # templates in code, no prompt file
        return facts.VERSION
    if strategy in PER_SAMPLE_LANG and cfg.lang == "auto":
        return "+".join(_version(cfg, n, lg) for lg in ("zh", "en") for n in STRATEGY_PROMPTS[strategy])
    names = list(STRATEGY_PROMPTS[strategy])
    if cfg.paraphrase.enabled and strategy in cfg.paraphrase.apply_to:
        names.append("paraphrase")
    if cfg.evol_instruct.enabled and strategy in cfg.evol_instruct.apply_to:
        names += [f"evol_{m}" for m, on in (("depth", cfg.evol_instruct.depth), ("breadth", cfg.evol_instruct.breadth)) if on]
        names.append("rag_answer")
    return "+".join(_version(cfg, n, lang) for n in names)


def _settings(cfg: SynthConfig) -> str:
    """Config that changes what an item produces (not how it is sharded) goes into the item id."""
    return stable_hash(cfg.model_dump(exclude={"shard_size", "by_format"}))[:12]


def _item(cfg: SynthConfig, strategy: str, chunk_id: str, doc_id: str, lang: str, fmt: str,
          params: dict[str, Any] | None = None, text_chars: int = 0, expected: int = 0) -> WorkItem:
    pv = _prompt_versions(cfg, strategy, lang)
    params = dict(params or {})
    params["settings"] = _settings(cfg)
    key = chunk_id or doc_id or params.get("key", "")
    return WorkItem(item_id_for(strategy, key, pv, params), strategy, chunk_id, doc_id, lang, fmt, pv, params,
                    text_chars, expected)


def plan(chunks: pa.Table | list[dict[str, Any]], docs: pa.Table | list[dict[str, Any]], cfg: SynthConfig) -> list[WorkItem]:
    """One WorkItem per (strategy, chunk) for chunk strategies, per (strategy, document) for
    record/section templates and summaries, per language for identity. Deterministic order and ids.

    A chunk of kind "code" in a document that is not code (a fenced or <pre>
    block of Markdown or HTML) takes the code strategies (`by_format.code`,
    default code_tasks) instead of its document's chunk strategies.
    """
    chunk_rows = rows_by_key(chunks, "chunk_id")
    doc_rows = rows_by_key(docs, "doc_id")
    by_doc: dict[str, list[dict[str, Any]]] = {}
    for c in chunk_rows.values():
        by_doc.setdefault(c["doc_id"], []).append(c)
    code_strategies = cfg.strategies_for("code")
    items: list[WorkItem] = []
    for doc_id in sorted(set(doc_rows) | set(by_doc)):
        doc = doc_rows.get(doc_id)
        dchunks = sorted(by_doc.get(doc_id, []), key=lambda c: (c["start"], c["end"]))
        fmt = (doc or (dchunks[0] if dchunks else {})).get("format", "") or ""
        strategies = cfg.strategies_for(fmt)
        if cfg.self_instruct.enabled and any(s in ("qa", "rag") for s in strategies) and "self_instruct" not in strategies:
            strategies.append("self_instruct")
        sample = (doc or {}).get("text", "") or "".join(c["text"] for c in dchunks[:3])
        doc_lang = text_lang(cfg, sample[:4000], detect_lang(sample, cfg.zh_threshold, cfg.lang))
        in_code_file = family(fmt) == "code"
        blocks = [c for c in dchunks if not in_code_file and c.get("kind") == "code"]
        prose = [c for c in dchunks if in_code_file or c.get("kind") != "code"]
        for strategy in strategies:
            if strategy in DOC_STRATEGIES:
                if doc is not None:
                    items += _doc_item(cfg, strategy, doc, doc_lang, fmt)
            elif strategy in LLM_STRATEGIES:
                items += _chunk_items(cfg, strategy, prose, doc_id, doc_lang, fmt)
            elif strategy == "continuation":
                for c in dchunks[1:] if dchunks and dchunks[0]["start"] <= 0 else dchunks:
                    if c["start"] <= 0:
                        continue
                    lang = text_lang(cfg, c["text"], doc_lang)
                    items.append(_item(cfg, strategy, c["chunk_id"], doc_id, lang, fmt,
                                       text_chars=len(c["text"]), expected=1))
        for strategy in code_strategies if blocks else []:
            if strategy in LLM_STRATEGIES:
                items += _chunk_items(cfg, strategy, blocks, doc_id, doc_lang, fmt)
    if cfg.identity.enabled:
        for lang in cfg.identity.langs:
            pairs = load_prompt("identity", lang).extra.get("pairs") or []
            items.append(_item(cfg, "identity", "", "", lang, "", {"key": f"identity:{lang}"}, expected=len(pairs)))
    return items


def _chunk_items(cfg: SynthConfig, strategy: str, chunks: list[dict[str, Any]], doc_id: str, doc_lang: str,
                 fmt: str) -> list[WorkItem]:
    """One item per chunk long enough, in the language of the chunk's prose (else the document's)."""
    out = []
    for c in chunks:
        if len(c["text"].strip()) < cfg.min_chunk_chars:
            continue
        lang = text_lang(cfg, c["text"], doc_lang)
        out.append(_item(cfg, strategy, c["chunk_id"], doc_id, lang, fmt, text_chars=len(c["text"])))
    return out


def _doc_item(cfg: SynthConfig, strategy: str, doc: dict[str, Any], doc_lang: str, fmt: str) -> list[WorkItem]:
    """The one item of a document strategy, when the document gives it something to do."""
    if strategy == "facts":
        n = facts.expected_count(doc, cfg)
    elif strategy == "record_template":
        n = record_template.expected_count(doc, cfg)
    elif strategy == "section_template":
        n = len(section_template.sections_with_body(doc, cfg.section.min_chars, section_template.answer_cap(cfg),
                                                    cfg.section.subsections))
    else:
        n = len(summary.units(doc, cfg))
    if not n:
        return []
    return [_item(cfg, strategy, "", doc["doc_id"], doc_lang, fmt, text_chars=len(doc["text"]), expected=n)]


def _tok(counter: Callable[[str], int] | None, text: str) -> int:
    return counter(text) if counter else estimate_tokens(text)


def _chars_tokens(counter: Callable[[str], int] | None, chars: int, lang: str) -> int:
    """Tokens of `chars` characters of generated text in `lang`, when no text exists yet."""
    if counter:
        sample = ("中" if lang == "zh" else "word ") * max(1, chars // (1 if lang == "zh" else 5))
        return counter(sample[:chars])
    return int(round(chars / 1.5)) if lang == "zh" else int(round(chars / 4.0))


def estimate(items: list[WorkItem], cfg: SynthConfig, tokenizer_count: Callable[[str], int] | None = None,
             chunks: Any = None) -> dict[str, Any]:
    """Requests and tokens per strategy, without calling anything.

    Prompt tokens count the system prompt and the source text (from `chunks`
    when given, else ~text_chars of the item); completions assume the targets
    of the config (answer_target_chars, questions_per_chunk, k). Retries of
    malformed outputs are not included; `max_requests` bounds them.
    """
    chunk_rows = rows_by_key(chunks, "chunk_id") if chunks is not None else {}
    n = cfg.questions_per_chunk
    t = cfg.answer_target_chars
    q_chars = 40
    by: dict[str, dict[str, int]] = {}
    sys_cache: dict[tuple[str, str], int] = {}

    def sys_tokens(name: str, lang: str) -> int:
        if (name, lang) not in sys_cache:
            p = load_prompt(name, lang, cfg.prompt_overrides.get(f"{name}.{lang}") or cfg.prompt_overrides.get(name))
            sys_cache[(name, lang)] = _tok(tokenizer_count, p.fixed_text())
        return sys_cache[(name, lang)]

    for it in items:
        s = by.setdefault(it.strategy, {"items": 0, "requests": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                        "samples": 0})
        s["items"] += 1
        lang = it.lang
        if it.chunk_id in chunk_rows:
            src = _tok(tokenizer_count, chunk_rows[it.chunk_id]["text"])
        else:
            src = _chars_tokens(tokenizer_count, it.text_chars, lang)
        gen = lambda chars: _chars_tokens(tokenizer_count, chars, lang)  # noqa: E731
        req = prompt = comp = 0
        rows = it.expected_samples
        if it.strategy == "qa":
            req, prompt, comp, rows = 1, sys_tokens("qa_pairs", lang) + src, gen(n * (t + q_chars)), n
        elif it.strategy == "self_instruct":
            k = cfg.self_instruct.n
            req, prompt, comp, rows = 1, sys_tokens("self_instruct", lang) + src, gen(k * (t + q_chars)), k
        elif it.strategy == "rag":
            ctx_tokens = min(gen(cfg.rag.max_context_chars), src * (1 + cfg.rag.top_k))
            req = 1 + n
            prompt = sys_tokens("rag_questions", lang) + src + n * (sys_tokens("rag_answer", lang) + ctx_tokens + gen(q_chars))
            comp = gen(n * q_chars) + n * gen(t)
            rows = n
        elif it.strategy == "dialogue":
            turns = cfg.dialogue.max_turns
            req, prompt, comp, rows = 1, sys_tokens("dialogue", lang) + src, gen(turns * (t + q_chars)), 1
        elif it.strategy == "summary":  # one request per section; text_chars is the whole document
            req = max(1, it.expected_samples)
            prompt, comp, rows = req * sys_tokens("summary", lang) + src, req * gen(t), req
        elif it.strategy == "atomic_facts":
            req, prompt, comp, rows = 1, sys_tokens("atomic_facts", lang) + src, min(src, gen(t * 2)), 1
        elif it.strategy == "rewrite":
            k = cfg.rewrite.k
            req, prompt, comp, rows = k, k * (sys_tokens("rewrite", lang) + src), k * src, k
        elif it.strategy == "raft":
            k, shown = cfg.raft.questions, min(src, gen(cfg.raft.max_doc_chars)) * (1 + cfg.raft.distractors)
            req = 1 + k
            prompt = sys_tokens("rag_questions", lang) + src + k * (sys_tokens("raft_answer", lang) + shown + gen(q_chars))
            comp, rows = gen(k * q_chars) + k * gen(t), k
        elif it.strategy in ("code_tasks", "log_tasks"):
            tasks = cfg.code.tasks if it.strategy == "code_tasks" else cfg.log.tasks
            req = len(tasks)
            prompt = req * (sys_tokens(it.strategy, lang) + src)
            comp = req * gen(t)
            rows = req
        if it.strategy in LLM_STRATEGIES or rows:
            base_rows = rows
            if cfg.paraphrase.enabled and it.strategy in cfg.paraphrase.apply_to and base_rows:
                req += base_rows
                prompt += base_rows * (sys_tokens("paraphrase", lang) + gen(t + q_chars))
                comp += base_rows * gen(cfg.paraphrase.k * (t + q_chars))
                rows += base_rows * cfg.paraphrase.k
            if cfg.evol_instruct.enabled and it.strategy in cfg.evol_instruct.apply_to and base_rows:
                modes = int(cfg.evol_instruct.depth) + int(cfg.evol_instruct.breadth)
                req += 2 * modes * base_rows
                prompt += modes * base_rows * (sys_tokens("evol_depth", lang) + 2 * src + sys_tokens("rag_answer", lang))
                comp += modes * base_rows * (gen(q_chars) + gen(t))
                rows += modes * base_rows
        s["requests"] += req
        s["prompt_tokens"] += prompt
        s["completion_tokens"] += comp
        s["samples"] += rows
    total = {k: sum(v[k] for v in by.values()) for k in ("items", "requests", "prompt_tokens", "completion_tokens", "samples")}
    return {
        **total,
        "max_requests": total["requests"] * cfg.max_attempts,
        "max_completion_tokens": total["requests"] * cfg.max_tokens,
        "by_strategy": dict(sorted(by.items())),
        "tokens_from": "tokenizer" if tokenizer_count else "chars (1 token ~ 1.5 CJK chars / 4 other chars)",
    }


def format_estimate(est: dict[str, Any]) -> str:
    """A plain-text table for `infuse plan`."""
    lines = [f"{'strategy':<18}{'items':>8}{'requests':>10}{'prompt tok':>12}{'compl. tok':>12}{'samples':>9}"]
    for name, s in est["by_strategy"].items():
        lines.append(f"{name:<18}{s['items']:>8}{s['requests']:>10}{s['prompt_tokens']:>12}"
                     f"{s['completion_tokens']:>12}{s['samples']:>9}")
    lines.append(f"{'total':<18}{est['items']:>8}{est['requests']:>10}{est['prompt_tokens']:>12}"
                 f"{est['completion_tokens']:>12}{est['samples']:>9}")
    lines.append(f"at most {est['max_requests']} requests with retries; completion tokens capped at "
                 f"{est['max_completion_tokens']}; tokens from {est['tokens_from']}")
    return "\n".join(lines)
