"""How a model answers: greedily, in batches, and the loss per token of a reference answer.

Every model answers with the same chat template (the tuned model's; the base
model gets a view of its weights with that tokenizer: `base_view`) through
`infuse.operators.llm` (transformers on CPU, vllm on GPU, or an
OpenAI-compatible endpoint serving the same directories). An adapter is merged
into a plain directory first (`loadable`), so every backend loads every model
the same way.
"""
from __future__ import annotations

import gc
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from infuse.operators.evaluate.questions import Item
from infuse.operators.llm import ChatRequest, ChatResult, LLMConfig, make_backend
from infuse.operators.train.tokenizer import base_with_template, base_with_tokenizer


@dataclass
class Answerer:
    """One row of the report: a model directory, and whether it reads retrieved chunks first."""

    name: str  # base | cpt | sft | dpo | base+rag
    path: str
    rag: bool = False
    model_id: str = ""  # what the weights and template are (content hashes): the key of kept answers


def view_id(model_dir: str | Path) -> str:
    """The identity of a model directory whose weights are never retrained here (the base model's view): every
    small file's bytes (config, generation config, tokenizer, template) and each weight file's name and size."""
    root = Path(model_dir)
    digest = hashlib.sha256()
    for p in sorted(root.iterdir()):
        if not p.is_file():
            continue
        if p.stat().st_size < 64 * 2**20:
            digest.update(p.name.encode() + b"\0" + p.read_bytes())
        else:
            digest.update(f"{p.name}:{p.stat().st_size}".encode())
    return digest.hexdigest()[:24]


def base_view(base: str | Path, out: Path, template_from: str | Path | None, chat_template: str | None = None) -> Path:
    """The base model's weights with the evaluated template: links to its files, the tokenizer of `template_from`
    (a tuned model of this run), else the base tokenizer with the template training would give it."""
    if template_from is not None:
        return base_with_tokenizer(base, out, template_from)
    return base_with_template(base, out, chat_template)


def loadable(model_dir: str | Path, out: Path, base_dir: str | Path | None = None) -> Path:
    """A plain model directory for a model artifact: itself when it holds full weights, else its merge."""
    from infuse.operators.train.card import read_card
    from infuse.operators.train.merge import merge_model

    model_dir, out = Path(model_dir), Path(out)
    card = read_card(model_dir) or {}
    if card.get("layout", "full") == "full":
        return model_dir
    if not (out / "card.json").is_file():
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        merge_model(model_dir, tmp, base_dir=Path(base_dir) if base_dir else None, dtype="bfloat16")
        shutil.rmtree(out, ignore_errors=True)
        tmp.replace(out)
    return out


def answer(answerer: Answerer, items: list[Item], llm: LLMConfig, max_new_tokens: int,
           prompts: dict[str, list[dict[str, str]]] | None = None, served: str | None = None,
           on_batch: Callable[[int], None] | None = None) -> list[ChatResult]:
    """Greedy answers of one model to every item, in order (a failed request is an error result, not a raise)."""
    cfg = llm.model_copy(update={"model": served or answerer.path, "seed": 0})
    backend = make_backend(cfg)
    reqs = [ChatRequest(id=it.item_id, messages=(prompts or {}).get(it.item_id, it.prompt), max_tokens=max_new_tokens,
                        temperature=0.0, top_p=1.0, seed=0) for it in items]
    step = max(cfg.batch_size, 64 if cfg.backend == "vllm" else cfg.batch_size * 2)
    out: list[ChatResult] = []
    try:
        for b in range(0, len(reqs), step):
            done = backend.generate(reqs[b : b + step])
            out += done
            if on_batch:
                on_batch(len(done))
    finally:
        del backend
        gc.collect()
    return out


def token_loss(model_path: str | Path, convs: list[list[dict[str, str]]],
               device: str = "auto") -> list[tuple[float, int]]:
    """(summed NLL, tokens) of each conversation's first answer given its prompt, with the model's template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    tok = AutoTokenizer.from_pretrained(model_path)
    lm = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32 if device == "cpu" else torch.bfloat16)
    lm.to(device).eval()
    out = []
    try:
        for msgs in convs:
            first = next(i for i, m in enumerate(msgs) if m["role"] == "assistant")
            prompt = tok.apply_chat_template(msgs[:first], tokenize=False, add_generation_prompt=True)
            full = tok.apply_chat_template(msgs[: first + 1], tokenize=False)
            p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
            ids = tok(full, add_special_tokens=False)["input_ids"]
            if len(ids) <= len(p_ids) or ids[: len(p_ids)] != p_ids:
                out.append((float("nan"), 0))
                continue
            ids = ids[: int(getattr(lm.config, "max_position_embeddings", 4096) or 4096)]
            x = torch.tensor([ids], device=device)
            labels = x.clone()
            labels[0, : len(p_ids)] = -100
            with torch.inference_mode():
                logits = lm(input_ids=x).logits[0, :-1].float()
            tgt = labels[0, 1:]
            nll = torch.nn.functional.cross_entropy(logits, tgt, ignore_index=-100, reduction="sum")
            n = int((tgt != -100).sum())
            out.append((float(nll), n))
    finally:
        del lm
        gc.collect()
    return out


def isolated(fn: Callable[..., Any], *args: Any) -> Any:
    """Run fn(*args) in a fresh (spawned) process: on a GPU each model gets the whole device and gives it back
    when the process ends, which in-process vLLM engines do not reliably do one after another."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()
