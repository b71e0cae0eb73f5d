"""Which models evaluate asks, on model directories made of small files: the base model seen through a tuned
model's tokenizer (operators/train/tokenizer.py), the base under an adapter read from its card
(operators/train/card.py), and the answerers: the run's merged model standing in for its adapter, the base
answering in the SFT model's template, the last tuned model with retrieval."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from infuse.operators.evaluate.answerers import Tuned, answerers
from infuse.operators.train.card import MergeError, base_of, fingerprint, root_base, write_card
from infuse.operators.train.tokenizer import base_with_template, base_with_tokenizer


def model(path: Path, files: dict[str, str], card: dict | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in {"config.json": '{"model_type": "x"}', **files}.items():
        (path / name).write_text(text, encoding="utf-8")
    if card is not None:
        write_card(path, card)
    return path


def test_the_base_gets_the_tuned_tokenizer_and_keeps_its_weights_linked_not_copied(tmp_path):
    base = model(tmp_path / "base", {"model.safetensors": "weights", "tokenizer.json": "base tok",
                                     "tokenizer.model": "base spm", "generation_config.json": "base gen"})
    tuned = model(tmp_path / "sft", {"tokenizer.json": "sft tok", "chat_template.jinja": "sft template"})
    view = base_with_tokenizer(base, tmp_path / "view", tuned)
    assert os.path.samefile(view / "model.safetensors", base / "model.safetensors")
    assert {p.name: p.read_text() for p in view.iterdir() if p.name != "model.safetensors"} == {
        "config.json": '{"model_type": "x"}', "tokenizer.json": "sft tok", "chat_template.jinja": "sft template"}
    assert (base / "tokenizer.json").read_text() == "base tok", "the base's own files are untouched"
    (tuned / "tokenizer.json").write_text("changed", encoding="utf-8")
    assert base_with_tokenizer(base, tmp_path / "view", tuned) == view
    assert (view / "tokenizer.json").read_text() == "sft tok", "built once: a finished view is kept as it is"


def test_the_base_with_its_own_template_never_writes_through_its_links(tmp_path):
    from tiny_models import make_tiny_model
    from transformers import AutoTokenizer

    base = make_tiny_model(tmp_path / "base")
    before = {p.name: p.read_bytes() for p in base.iterdir()}
    view = base_with_template(base, tmp_path / "view")
    assert {p.name: p.read_bytes() for p in base.iterdir()} == before
    assert os.path.samefile(view / "model.safetensors", base / "model.safetensors")
    assert not (view / ".tokenizer").exists()
    tok = AutoTokenizer.from_pretrained(view)
    assert tok.chat_template and "<start_of_turn>" in tok.apply_chat_template(
        [{"role": "user", "content": "Hello"}], tokenize=False, add_generation_prompt=True)
    gen = json.loads((view / "generation_config.json").read_text(encoding="utf-8"))
    assert tok.convert_tokens_to_ids("<end_of_turn>") in gen["eos_token_id"]


def test_base_of_names_the_directory_an_adapter_applies_to_and_checks_it(tmp_path):
    base = model(tmp_path / "base", {"model.safetensors": "w"})
    card = {"layout": "adapter", "base": {"path": str(base), "fingerprint": fingerprint(base)}}
    adapter = model(tmp_path / "lora", {}, card)
    assert base_of(adapter, card, None) == base
    assert base_of(adapter, {"layout": "full"}, None) is None
    assert base_of(adapter, {"layout": "adapter+sft"}, None) == adapter / "sft"
    assert base_of(adapter, {"layout": "adapter+base"}, None) == adapter / "base"
    moved = model(tmp_path / "moved", {"model.safetensors": "w"})
    assert base_of(adapter, card, moved) == moved, "where the base is now, when the caller knows"
    (moved / "model.safetensors").write_text("other weights", encoding="utf-8")
    with pytest.raises(MergeError, match="not the one the adapter was trained on"):
        base_of(adapter, card, moved)
    with pytest.raises(MergeError, match="not there any more"):
        base_of(adapter, card, tmp_path / "nowhere")


def test_root_base_follows_a_dpo_adapter_to_the_sft_card_and_maps_its_source_to_a_run_input(tmp_path):
    sft_card = {"layout": "adapter", "base": {"source": "cpt.model", "path": "/where/cpt/was"}}
    dpo = model(tmp_path / "dpo", {}, {"layout": "adapter+sft", "base": {"source": "model"}})
    model(dpo / "sft", {}, sft_card)
    cpt = tmp_path / "cpt"
    assert root_base(dpo, {"cpt.model": cpt, "model": tmp_path / "base"}) == cpt
    assert root_base(dpo, {"model": tmp_path / "base"}) is None, "no such input: the card's own path stands"
    assert root_base(dpo / "sft", {"cpt.model": cpt}) == cpt
    assert root_base(model(tmp_path / "plain", {}), {"model": tmp_path / "base"}) is None


def test_the_merged_model_stands_in_for_its_adapter_and_the_base_answers_in_the_sft_template(tmp_path):
    base = model(tmp_path / "base", {"model.safetensors": "w", "tokenizer.json": "base tok"})
    tuned = [Tuned(name, f"{name}.model", model(tmp_path / name, {"tokenizer.json": f"{name} tok"},
                                                {"layout": "full"}), f"sha-{name}", chat=name != "cpt")
             for name in ("cpt", "sft", "dpo")]
    merged = model(tmp_path / "merged", {}, {"layout": "full", "merged_from": {"fingerprint": fingerprint(
        tmp_path / "dpo")}})
    who = answerers(base, [*tuned, Tuned("merge", "merge.merged", merged, "sha-merged")], tmp_path / "work", rag=True)
    assert [(a.name, a.rag) for a in who] == [("base", False), ("cpt", False), ("sft", False), ("dpo", False),
                                              ("base+rag", True), ("dpo+rag", True)]
    by = {a.name: a for a in who}
    assert (by["dpo"].path, by["dpo"].model_id) == (str(merged), "sha-dpo:merged")
    assert (by["sft"].path, by["sft"].model_id) == (str(tmp_path / "sft"), "sha-sft:adapter")
    assert by["dpo+rag"].path == by["dpo"].path and by["base+rag"].model_id == by["base"].model_id
    assert (Path(by["base"].path) / "tokenizer.json").read_text() == "sft tok", "the first chat-tuned model's"
    cpt_only = answerers(base, tuned[:1], tmp_path / "cpt-only")
    assert [a.name for a in cpt_only] == ["base", "cpt"]
    assert (Path(cpt_only[0].path) / "tokenizer.json").read_text() == "cpt tok"
