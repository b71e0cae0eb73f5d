"""card.json: what a model infuse wrote is, and the checks made when it is read back.

Every model artifact (cpt, sft, dpo, merge) carries a card: kind, method and
layout, the base it started from (where it was, which run input it came from,
a fingerprint of its files), the chat template (name and sha256), the hashes
of the training data and the final metrics. `check_template` refuses a model
directory whose tokenizer template is not the template its card names, so a
model can never be trained with one template and evaluated or served with
another. `base_of` and `root_base` read from the cards which model an adapter
applies to.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infuse.operators.train.templates import TemplateError, template_hash

CARD = "card.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


def write_card(model_dir: Path, card: dict[str, Any]) -> None:
    card = {"infuse_card": 1, "created_at": time.time(), **card}
    tmp = model_dir / f".{CARD}.tmp"
    tmp.write_text(json.dumps(card, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, model_dir / CARD)


def read_card(model_dir: Path) -> dict[str, Any] | None:
    path = Path(model_dir) / CARD
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def fingerprint(model_dir: str | Path) -> str:
    """A cheap identity of a model directory: config.json's bytes and every weight file's name and size
    (hashing gigabytes of weights on each load would cost more than it tells)."""
    root = Path(model_dir)
    digest = hashlib.sha256()
    for name in ("config.json", "adapter_config.json"):
        if (root / name).is_file():
            digest.update(name.encode())
            digest.update((root / name).read_bytes())
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix in WEIGHT_SUFFIXES:
            digest.update(f"{p.relative_to(root)}:{p.stat().st_size}".encode())
    return digest.hexdigest()[:24]


def tokenizer_template(model_dir: str | Path) -> str | None:
    """The chat template a directory's tokenizer loads with (chat_template.jinja or tokenizer_config.json)."""
    root = Path(model_dir)
    if (root / "chat_template.jinja").is_file():
        return (root / "chat_template.jinja").read_text(encoding="utf-8")
    cfg = root / "tokenizer_config.json"
    if cfg.is_file():
        tpl = json.loads(cfg.read_text(encoding="utf-8")).get("chat_template")
        return tpl if isinstance(tpl, str) else None
    return None


def check_template(model_dir: str | Path, expected_sha256: str | None = None) -> dict[str, Any] | None:
    """Raise TemplateError when the directory's template differs from its card's (or from `expected`).
    Returns the card (None for a directory infuse did not write)."""
    card = read_card(Path(model_dir))
    have = template_hash(tokenizer_template(model_dir))
    want = expected_sha256 or (card or {}).get("template", {}).get("sha256")
    if want and have != want:
        raise TemplateError(f"{model_dir}: its tokenizer's chat template (sha256 {have[:12]}) is not the one the "
                            f"model was trained with (sha256 {want[:12]}); re-save the tokenizer from the training "
                            f"output instead of editing it")
    return card


class MergeError(ValueError):
    """An adapter whose base is gone or changed: it cannot be merged or served."""


def base_of(model_dir: Path, card: dict[str, Any], base_dir: Path | None) -> Path | None:
    """The directory an adapter applies to (None for a full model): the updated base a hybrid adapter carries
    (`base/`), the SFT model under a DPO adapter (`sft/`), else the plain model it was trained on: `base_dir`
    where the caller knows where that model is now (`root_base`), else the card's `base.path`, checked there
    and unchanged (the card's fingerprint)."""
    layout = card.get("layout")
    if layout == "full":
        return None
    if layout == "adapter+base":
        return model_dir / "base"
    if layout == "adapter+sft":
        return model_dir / "sft"
    base = Path(base_dir or card["base"]["path"])
    if not (base / "config.json").is_file():
        raise MergeError(f"the adapter's base model {base} is not there any more")
    want = card["base"].get("fingerprint")
    if want and fingerprint(base) != want:
        raise MergeError(f"the base model at {base} is not the one the adapter was trained on (its files changed)")
    return base


def root_base(model_dir: str | Path, inputs: Mapping[str, Path]) -> Path | None:
    """Where the plain model at the bottom of an adapter chain is in this run: the entry of `inputs` (run inputs
    by name: `model`, `cpt.model`) that its card's `base.source` names, read through a DPO adapter to the SFT
    model under it. None when `inputs` has no such entry."""
    model_dir = Path(model_dir)
    card = read_card(model_dir) or {}
    if card.get("layout") == "adapter+sft" and (model_dir / "sft").is_dir():
        card = read_card(model_dir / "sft") or {}
    source = (card.get("base") or {}).get("source")
    return inputs.get(source) if source else None
