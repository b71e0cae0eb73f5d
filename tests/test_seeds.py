"""Seeded sampling (issue 7): synthesis gives every request a seed derived from its item, wave and
index, so two uninterrupted runs at temperature 0.7 give the same samples; LLMConfig.seed replaces it."""
from __future__ import annotations

import os

import pyarrow as pa
import pytest
from faulty_server import FaultyServer

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from infuse.operators.llm import ChatRequest, make_backend  # noqa: E402
from infuse.operators.synthesize import SynthConfig, plan, run_items  # noqa: E402
from infuse.operators.synthesize.waves import request_seed  # noqa: E402

CODE = ["int add(int a, int b) {\n    return a + b;\n}", "int sub(int a, int b) {\n    return a - b;\n}"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A one-layer Gemma 3 of width 16 with random weights and a word-level tokenizer trained here
    (with the packaged Gemma chat template): loads in milliseconds, samples like any model."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

    from infuse.operators.common.models import GEMMA_CHAT_TEMPLATE

    path = tmp_path_factory.mktemp("tiny-gemma")
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
    raw = Tokenizer(models.WordLevel(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    words = " ".join(CODE) + " trigger explain what this C code does the implementation step by step user model"
    raw.train_from_iterator([words] * 2, trainers.WordLevelTrainer(special_tokens=specials, min_frequency=1))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>",
                                  unk_token="<unk>", additional_special_tokens=specials[4:])
    tok.chat_template = GEMMA_CHAT_TEMPLATE
    tok.save_pretrained(path)
    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                              num_attention_heads=1, num_key_value_heads=1, head_dim=16, max_position_embeddings=1024,
                              sliding_window=64, layer_types=["full_attention"], bos_token_id=tok.bos_token_id,
                              eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    Gemma3ForCausalLM(config).save_pretrained(path)
    return str(path)


def code_inputs():
    docs, chunks = [], []
    for i, code in enumerate(CODE):
        docs.append({"doc_id": f"c{i}", "path": f"src/f{i}.c", "format": "c", "title": "", "text": code,
                     "sections": [], "pages": [], "metadata": "{}"})
        chunks.append({"chunk_id": f"c{i}-0", "doc_id": f"c{i}", "path": f"src/f{i}.c", "format": "c",
                       "chunk_index": 0, "text": code, "heading_path": [], "page": None, "start": 0,
                       "end": len(code), "kind": "code"})
    return pa.Table.from_pylist(chunks), pa.Table.from_pylist(docs)


def synth_texts(model_path: str, **llm) -> list[str]:
    """Answers of one fresh run: a new backend (a new process would load the same way)."""
    chunks, docs = code_inputs()
    cfg = SynthConfig(by_format={"code": ["code_tasks"]}, code={"tasks": ["function", "explain"]},
                      temperature=0.7, max_tokens=16, lang="en")
    backend = make_backend({"backend": "transformers", "model": model_path, "device": "cpu", "batch_size": 2, **llm})
    rows, status = run_items(plan(chunks, docs, cfg), backend, cfg, chunks=chunks, docs=docs)
    assert [s.status for s in status] == ["done", "done"], [(s.error_kind, s.error) for s in status]
    return [r["messages"][-1]["content"] for r in rows]


def test_transformers_runs_at_temperature_are_reproducible(tiny_model):
    import torch

    first = synth_texts(tiny_model)
    torch.manual_seed(12345)  # whatever the process's RNG did in between
    second = synth_texts(tiny_model)
    assert len(first) == 4 and first == second
    assert len(set(first)) == 4  # sampled: each request its own seed, so the answers differ
    # a seed in the recipe replaces the derived ones: every request gets it
    assert synth_texts(tiny_model, seed=7) != first


def test_request_seeds_sent_and_stable():
    seen: list[tuple[str, int | None]] = []

    def content(body):
        seen.append((body["messages"][-1]["content"], body.get("seed")))
        return "It adds two integers and returns the sum."

    chunks, docs = code_inputs()
    cfg = SynthConfig(by_format={"code": ["code_tasks"]}, code={"tasks": ["function"]}, lang="en")
    with FaultyServer(fail_rate=0.0, content_fn=content) as server:
        for llm in ({}, {}, {"seed": 3}):
            backend = make_backend({"backend": "openai", "base_url": server.base_url, "model": "m", **llm})
            run_items(plan(chunks, docs, cfg), backend, cfg, chunks=chunks, docs=docs)
    runs = [sorted(seen[k:k + 2]) for k in (0, 2, 4)]
    assert runs[0] == runs[1]  # the same seeds in the same run again
    seeds = [s for _, s in runs[0]]
    assert all(isinstance(s, int) for s in seeds) and len(set(seeds)) == 2
    assert [s for _, s in runs[2]] == [3, 3]  # LLMConfig.seed is sent as it is
    items = plan(chunks, docs, cfg)
    assert set(seeds) == {request_seed(it.item_id, 1, 0) for it in items}  # item, first wave, first request


@pytest.mark.gpu
@pytest.mark.slow
def test_vllm_request_seed_reproducible():
    pytest.importorskip("vllm")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("vllm backend needs CUDA")
    backend = make_backend({"backend": "vllm", "max_model_len": 1024, "gpu_memory_utilization": 0.3})
    reqs = [ChatRequest(id=f"r{i}", messages=[{"role": "user", "content": "Tell me a story."}], max_tokens=24,
                        temperature=0.9, seed=100 + i) for i in range(2)]
    a = [r.text for r in backend.generate(reqs)]
    b = [r.text for r in backend.generate(reqs)]
    assert a == b and a[0] != a[1]


class DictMemo:
    """The preference sampler's memo, in memory (a fresh one: nothing remembered)."""

    def __init__(self) -> None:
        self.kept: dict[str, object] = {}

    def get(self, key):
        return (self.kept[key], {}) if key in self.kept else None

    def put(self, entries):
        self.kept.update({k: v for k, v, _ in entries})

    def finish(self, keep):
        pass

    def stats(self):
        return {}


def preference_replies(model_path: str, seed: int) -> list[str]:
    """Two prompts, three replies each, at temperature 1, from a fresh memo."""
    from contextlib import nullcontext
    from types import SimpleNamespace

    from infuse.operators.llm import LLMConfig
    from infuse.operators.preference.config import PreferenceConfig
    from infuse.operators.preference.pairs import Prompt
    from infuse.operators.preference.sampling import ReplyModel, sample_replies

    prompts = [Prompt(f"s{i}", [{"role": "user", "content": f"explain what this C code does {CODE[i]}"}], "x", "t")
               for i in range(2)]
    cfg = PreferenceConfig(samples_per_prompt=3, temperature=1.0, max_new_tokens=8, seed=seed)
    model = ReplyModel("sft", LLMConfig(backend="transformers", model=model_path, device="cpu", batch_size=2), "sha")
    bar = SimpleNamespace(update=lambda n: None)
    got = sample_replies(prompts, model, cfg, DictMemo(), lambda *a: nullcontext(bar))
    assert len(got) == 6 and all(c.error is None and c.text for c in got)
    return [c.text for c in got]


def test_preference_samples_are_seeded_by_the_recipe_prompt_and_k(tiny_model):
    import torch

    first = preference_replies(tiny_model, seed=7)
    torch.manual_seed(12345)  # the process's RNG elsewhere: no bearing on a seeded request
    assert preference_replies(tiny_model, seed=7) == first
    assert preference_replies(tiny_model, seed=8) != first
