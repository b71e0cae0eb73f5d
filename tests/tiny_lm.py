"""Tiny causal LMs built from a config, with a byte-level BPE tokenizer trained on the spot (offline, seconds).

`tiny_lm(dir, arch)` saves a model dir that AutoModelForCausalLM and AutoTokenizer load like any other:
random weights, a real tokenizer with BOS/EOS/PAD, and a Gemma-style chat template.
"""
from __future__ import annotations

from pathlib import Path

TEMPLATE = (
    "{{ bos_token }}"
    "{%- for m in messages -%}"
    "{{ '<start_of_turn>' + ('model' if m['role'] == 'assistant' else m['role']) + '\n' + m['content'] | trim"
    " + '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)
CORPUS = [
    "LotusDB is an embedded key value database. It stores data in a log structured merge tree.",
    "What is LotusDB? How do I open a database? Use lotus_open with a path and options.",
    "The write ahead log keeps every write until it is flushed to a segment file on disk.",
    "Compaction merges segment files and drops deleted keys. 压缩会合并段文件并删除已删除的键。",
    "user model system question answer the a an is of to and in it with for on",
]
SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]


def tiny_tokenizer(vocab_size: int = 400):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS * 4, vocab_size=vocab_size, min_frequency=1, special_tokens=SPECIAL,
                            show_progress=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<bos>", eos_token="<eos>",
                                  pad_token="<pad>", unk_token="<unk>",
                                  additional_special_tokens=["<start_of_turn>", "<end_of_turn>"])
    tok.chat_template = TEMPLATE
    return tok


def tiny_lm(path: Path, arch: str = "llama", seed: int = 0, hidden: int = 32, layers: int = 2) -> Path:
    """Save a tiny random model + tokenizer under `path`; arch: llama | gemma3 (with logit softcapping)."""
    import torch
    from transformers import AutoModelForCausalLM

    tok = tiny_tokenizer()
    common = dict(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    if arch == "llama":
        from transformers import LlamaConfig

        config = LlamaConfig(**common, tie_word_embeddings=False)
    elif arch == "gemma3":
        from transformers import Gemma3TextConfig

        config = Gemma3TextConfig(**common, head_dim=8, sliding_window=16, final_logit_softcapping=5.0,
                                  layer_types=["sliding_attention", "full_attention"][:layers])
    else:
        raise ValueError(arch)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():  # bigger weights than the init, so the logits are far from uniform
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(8.0)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
