"""Chat templates and loss masks: what is trained and what is not, and template mismatches refused."""
from __future__ import annotations

import pytest
from tiny_models import make_tokenizer

from infuse.operators.train import data as D
from infuse.operators.train import templates as T
from infuse.operators.train.card import check_template, write_card

MULTI = [{"role": "system", "content": "SYSMSG rules"}, {"role": "user", "content": "first question"},
         {"role": "assistant", "content": "first answer"}, {"role": "user", "content": "second question"},
         {"role": "assistant", "content": "second answer"}]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return make_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.mark.parametrize("name", ["chatml", "qwen", "gemma", "plain"])
def test_only_replies_and_their_end_of_turn_are_trained(tok, name):
    tpl = T.named(name, tok)
    ids, labels = D.tokenize_chat(tok, MULTI, tpl.source)
    eot = tok.convert_tokens_to_ids(tpl.eot)
    trained = [t for t in labels if t != D.IGNORE]
    # exactly the two replies, each followed by the end-of-turn token, in order
    expected = []
    for reply in ("first answer", "second answer"):
        expected += tok(reply, add_special_tokens=False)["input_ids"] + [eot]
    assert trained == expected, tok.decode(trained)
    masked = tok.decode([t for t, lab in zip(ids, labels) if lab == D.IGNORE])
    assert "SYSMSG" in masked and "first question" in masked and "second question" in masked
    assert "answer" not in masked
    # the prompt the model sees when it answers is the training prefix of its reply
    prompt = tok.apply_chat_template(MULTI[:2], add_generation_prompt=True, tokenize=True, chat_template=tpl.source,
                                     return_dict=True)["input_ids"]
    assert ids[:len(prompt)] == prompt


def test_templates_that_need_missing_tokens_are_refused(tok):
    with pytest.raises(T.TemplateError, match="llama3.*<\\|start_header_id\\|>"):
        T.named("llama3", tok)
    with pytest.raises(T.TemplateError, match="unknown chat template 'vicuna'"):
        T.named("vicuna", tok)


def test_a_base_model_without_a_template_gets_its_family_default(tok):
    tok.chat_template = None
    assert T.resolve(tok, "gemma3_text", None).name == "gemma"
    assert T.resolve(tok, "qwen2", None).name == "qwen"
    assert T.resolve(tok, "mistral", None).name == "chatml"  # the tokenizer has the ChatML tokens
    assert T.resolve(tok, "gemma3_text", "plain").name == "plain"


def test_a_template_without_end_of_turn_in_the_markers_is_caught(tok):
    broken = T.NAMED["chatml"].source.replace("{%- generation -%}{{- message['content'] | trim + '<|im_end|>' -}}",
                                              "{%- generation -%}{{- message['content'] | trim -}}{%- endgeneration "
                                              "-%}{{- '<|im_end|>' -}}{%- generation -%}")
    assert broken != T.NAMED["chatml"].source
    with pytest.raises(T.TemplateError, match="outside the generation markers"):
        T.check_trainable(tok, T.ChatTemplate("chatml-broken", broken, "<|im_end|>"))


def test_samples_that_cannot_train_are_rejects_with_a_reason(tok):
    tpl = T.named("gemma", tok)
    rows = [{"sample_id": "ok", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
            {"sample_id": "noreply", "messages": [{"role": "user", "content": "hi"}]},
            {"sample_id": "bad", "messages": [{"role": "robot", "content": "x"}]},
            {"sample_id": "long", "messages": [{"role": "user", "content": "question " * 200},
                                               {"role": "assistant", "content": "answer"}]},
            {"sample_id": "cut", "messages": [{"role": "user", "content": "q"},
                                              {"role": "assistant", "content": "answer " * 200}]}]
    prep = D.prepare_chat(rows, tok, tpl.source, max_length=64)
    assert {r["id"]: r["reason"] for r in prep.rejects} == {"noreply": "no_assistant_turn",
                                                            "bad": "malformed_messages", "long": "too_long"}
    assert len(prep.examples) == 2 and prep.truncated == 1
    assert all(len(e["input_ids"]) <= 64 for e in prep.examples)


def test_packed_rows_keep_sample_boundaries(tok):
    tpl = T.named("gemma", tok)
    prep = D.prepare_chat([{"sample_id": str(i), "messages": MULTI[1:3]} for i in range(6)], tok, tpl.source, 64)
    packed = D.pack(prep.examples, 64, packing=True)
    assert len(packed) < 6  # several samples share a row
    for row in packed:
        assert sum(row["seq_lengths"]) == len(row["input_ids"]) <= 64
    ordered = D.ordered(packed, 2, seed=1)
    assert len(ordered) == 2 * len(packed)
    assert D.plan_steps(len(packed), 2, epochs=2, max_steps=None)[0] == -(-2 * len(packed) // 2)


def test_a_model_whose_template_was_edited_is_refused(tmp_path, tok):
    tpl = T.named("gemma", tok)
    T.install(tok, tpl)
    tok.save_pretrained(tmp_path)
    write_card(tmp_path, {"kind": "sft", "template": tpl.to_card()})
    assert check_template(tmp_path)["template"]["name"] == "gemma"
    (tmp_path / "chat_template.jinja").write_text(T.NAMED["chatml"].source, encoding="utf-8")
    with pytest.raises(T.TemplateError, match="not the one the model was trained with"):
        check_template(tmp_path)
