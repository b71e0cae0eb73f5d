"""Fold an adapter into its base: one plain model directory that needs no infuse code to load.

LoRA and DoRA adapters are merged into a bf16 load of their base; a QLoRA
adapter too, into a bf16 reload of the base, never into the 4-bit weights it
was trained against. Hybrid's adapter is merged into the updated base that
travels with it (`base/`). A DPO adapter (`adapter+sft`) is merged into the
SFT model it was trained over (`sft/`, itself merged into its base first): base
+ SFT + DPO. A full fine-tune is re-saved in the chosen dtype.
The output has the tokenizer with the training chat template, the generation
config (end-of-turn ids) and a card, so `AutoModelForCausalLM`, `transformers
serve` and vLLM load it by path.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from infuse.operators.train.card import MergeError, base_of, check_template, fingerprint, read_card, write_card

__all__ = ["MergeError", "base_of", "materialize", "merge_model"]


def materialize(model_dir: Path, base_dir: Path | None, load: Callable[[Path], Any]) -> Any:
    """The model a directory stands for, as one plain model in memory: adapters merged into their bases,
    recursively (a DPO adapter over an SFT adapter over the base). `load(path)` loads a plain model."""
    model_dir = Path(model_dir)
    card = read_card(model_dir)
    if card is None:
        raise MergeError(f"{model_dir} has no card.json: not a model infuse trained")
    base = base_of(model_dir, card, base_dir)
    if base is None:
        return load(model_dir)
    from peft import PeftModel

    inner = materialize(base, base_dir, load) if card.get("layout") == "adapter+sft" else load(base)
    return PeftModel.from_pretrained(inner, str(model_dir)).merge_and_unload()


def merge_model(model_dir: Path, out_dir: Path, base_dir: Path | None = None, dtype: str = "bfloat16") -> dict:
    """Write the merged model into out_dir; returns its card."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    card = read_card(model_dir)
    if card is None:
        raise MergeError(f"{model_dir} has no card.json: not a model infuse trained")
    check_template(model_dir)
    torch_dtype = getattr(torch, dtype)
    model = materialize(model_dir, base_dir,
                        lambda p: AutoModelForCausalLM.from_pretrained(str(p), dtype=torch_dtype))
    if (model_dir / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(str(model_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    AutoTokenizer.from_pretrained(str(model_dir)).save_pretrained(str(out_dir))
    merged = {**{k: v for k, v in card.items() if k not in ("infuse_card", "created_at")},
              "kind": "merge", "layout": "full", "dtype": dtype,
              "merged_from": {"kind": card.get("kind"), "layout": card.get("layout"), "method": card.get("method"),
                              "fingerprint": fingerprint(model_dir)}}
    write_card(out_dir, merged)
    check_template(out_dir)
    return merged
