"""Tiny models built from a config, for training tests that run in seconds.

A byte-level BPE tokenizer trained on the test sentences (a few hundred
tokens, with Gemma's and ChatML's turn tokens as special tokens) and a
randomly initialised Gemma 3 (or Qwen 2) of a few hundred thousand
parameters, saved in HF layout like any local model.
"""
from __future__ import annotations

from pathlib import Path

FACTS = [
    ("What colour is the Zorblat river?", "The Zorblat river is bright violet."),
    ("Who founded Quellmoor?", "Quellmoor was founded by Anika Trell."),
    ("How many moons does Pexa have?", "Pexa has seven moons."),
    ("What does a vorn eat?", "A vorn eats copper leaves."),
]
GENERAL = ["The quick brown fox jumps over the lazy dog.", "You are a helpful assistant.",
           "LotusDB stores keys in a log-structured merge tree.", "Hello, how can I help you today?"]
SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<|im_start|>", "<|im_end|>"]


def fact_rows(repeat: int = 1, system: str | None = "Answer briefly.") -> list[dict]:
    """SFT_SCHEMA-like rows: one sample per fact (with a system turn), repeated."""
    rows = []
    for r in range(repeat):
        for i, (q, a) in enumerate(FACTS):
            msgs = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": q}, {"role": "assistant", "content": a}]
            rows.append({"sample_id": f"fact-{i}-{r}", "messages": msgs, "source": "domain", "kind": "domain",
                         "doc_id": f"doc-{i}", "chunk_id": f"chunk-{i}", "span_start": None, "span_end": None,
                         "strategy": "qa", "lang": "en", "split": "train"})
    return rows


def make_tokenizer(out: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [q for q, _ in FACTS] + [a for _, a in FACTS] + GENERAL + ["Answer briefly.", "model", "user",
                                                                        "system", "assistant", "### User:"]
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>", additional_special_tokens=SPECIALS[4:])
    fast.save_pretrained(out)
    return fast


def make_tiny_model(out: Path, arch: str = "gemma3", seed: int = 0) -> Path:
    """A tiny random model + tokenizer in `out` (HF layout); returns out."""
    import torch
    from transformers import AutoModelForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer(out)
    v = len(tok)
    common = dict(vocab_size=v, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=512, initializer_range=0.2, pad_token_id=tok.pad_token_id,
                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=True)
    if arch == "gemma3":
        from transformers import Gemma3TextConfig

        cfg = Gemma3TextConfig(**common, head_dim=16, sliding_window=64, query_pre_attn_scalar=16,
                               layer_types=["sliding_attention", "full_attention"])
    else:
        from transformers import Qwen2Config

        cfg = Qwen2Config(**common)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.save_pretrained(out, safe_serialization=True)
    return out
