"""Chat templates: one per model, chosen once, saved with every model infuse writes.

The model's own template is used when it has one; a base model without one (the
packaged Gemma 3 270M carries only the plain one infuse adds) gets a template
by name: chatml, gemma, qwen, llama3 or plain. Every template infuse trains
with wraps assistant content AND the end-of-turn token in
`{% generation %}...{% endgeneration %}`, so `return_assistant_tokens_mask`
(and trl's assistant-only loss) trains exactly the reply and the token that
ends it. The template's sha256 goes into card.json; a model loaded as an
input is checked against it (see `card.py`), so training, evaluation and
serving cannot drift apart.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

# Each named template: the Jinja source, the end-of-turn string ("{eos}" = the tokenizer's EOS), and the
# strings that must be single tokens of the vocabulary for the format to mean anything.


def _turns(open_: str, close: str, header_end: str = "", sys_default: str = "") -> str:
    """A template where every message is `open_ + role + header_end + content + close`."""
    system = (f"{{%- if messages[0]['role'] != 'system' -%}}{{{{ {sys_default!r} }}}}{{%- endif -%}}"
              if sys_default else "")
    return (
        "{{- bos_token if bos_token else '' -}}"
        + system +
        "{%- for message in messages -%}"
        "{%- if message['role'] == 'assistant' -%}"
        f"{{{{- {open_!r} + 'assistant' + {header_end!r} -}}}}"
        "{%- generation -%}"
        f"{{{{- message['content'] | trim + {close!r} -}}}}"
        "{%- endgeneration -%}"
        "{{- '\\n' -}}"
        "{%- else -%}"
        f"{{{{- {open_!r} + message['role'] + {header_end!r} + message['content'] | trim + {close!r} + '\\n' -}}}}"
        "{%- endif -%}"
        "{%- endfor -%}"
        f"{{%- if add_generation_prompt -%}}{{{{- {open_!r} + 'assistant' + {header_end!r} -}}}}{{%- endif -%}}"
    )


CHATML = _turns("<|im_start|>", "<|im_end|>", "\n")
QWEN = _turns("<|im_start|>", "<|im_end|>", "\n",
              sys_default="<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")

LLAMA3 = (
    "{{- bos_token if bos_token else '' -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}"
    "{%- generation -%}{{- message['content'] | trim + '<|eot_id|>' -}}{%- endgeneration -%}"
    "{%- else -%}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}{%- endif -%}"
)

# Gemma has no system role: a system message is folded into the first user turn, as Gemma 3 IT does.
GEMMA = (
    "{{- bos_token if bos_token else '' -}}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set first_prefix = messages[0]['content'] | trim + '\\n\\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{- '<start_of_turn>model\\n' -}}"
    "{%- generation -%}{{- message['content'] | trim + '<end_of_turn>' -}}{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- else -%}"
    "{{- '<start_of_turn>' + message['role'] + '\\n' + (first_prefix if loop.first else '')"
    " + message['content'] | trim + '<end_of_turn>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<start_of_turn>model\\n' -}}{%- endif -%}"
)

# Any tokenizer: role headers in plain text, each reply ended by the EOS token.
PLAIN = (
    "{{- bos_token if bos_token else '' -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}{{- message['content'] | trim + '\\n\\n' -}}"
    "{%- elif message['role'] == 'user' -%}{{- '### User:\\n' + message['content'] | trim + '\\n\\n' -}}"
    "{%- else -%}"
    "{{- '### Assistant:\\n' -}}"
    "{%- generation -%}{{- message['content'] | trim + eos_token -}}{%- endgeneration -%}"
    "{{- '\\n\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '### Assistant:\\n' -}}{%- endif -%}"
)


@dataclass(frozen=True)
class NamedTemplate:
    source: str
    eot: str  # the end-of-turn string; "{eos}" = the tokenizer's EOS token
    needs: tuple[str, ...]  # strings that must be single tokens


NAMED: dict[str, NamedTemplate] = {
    "chatml": NamedTemplate(CHATML, "<|im_end|>", ("<|im_start|>", "<|im_end|>")),
    "qwen": NamedTemplate(QWEN, "<|im_end|>", ("<|im_start|>", "<|im_end|>")),
    "llama3": NamedTemplate(LLAMA3, "<|eot_id|>", ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")),
    "gemma": NamedTemplate(GEMMA, "<end_of_turn>", ("<start_of_turn>", "<end_of_turn>")),
    "plain": NamedTemplate(PLAIN, "{eos}", ()),
}
# The default name for a base model without a template of its own, by its config's model_type prefix.
DEFAULT_BY_MODEL_TYPE = (("gemma", "gemma"), ("qwen", "qwen"), ("llama", "llama3"))


class TemplateError(ValueError):
    """No usable chat template, or a model whose template is not the one it was trained with."""


@dataclass(frozen=True)
class ChatTemplate:
    """The template a model is trained and served with."""

    name: str  # a NAMED key, "own" (the model's, with markers) or "own+trl" (the model's, trl's training variant)
    source: str
    eot: str  # the end-of-turn token string, resolved

    @property
    def sha256(self) -> str:
        return template_hash(self.source)

    def to_card(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "eot": self.eot}


def template_hash(source: str | None) -> str:
    return hashlib.sha256((source or "").encode()).hexdigest()


def has_markers(source: str | None) -> bool:
    return bool(source) and "{% generation" in source.replace("{%-", "{%") and "endgeneration" in source


def _single_token(tokenizer: Any, text: str) -> bool:
    ids = tokenizer.convert_tokens_to_ids(text)
    unk = getattr(tokenizer, "unk_token_id", None)
    return isinstance(ids, int) and ids is not None and ids != unk and ids >= 0


def _is_infuse_plain_gemma(source: str | None) -> bool:
    """The marker-less template infuse adds when it converts the packaged Gemma: not the model's own."""
    from infuse.operators.common.models import GEMMA_CHAT_TEMPLATE

    return source == GEMMA_CHAT_TEMPLATE


def named(name: str, tokenizer: Any) -> ChatTemplate:
    if name not in NAMED:
        raise TemplateError(f"unknown chat template {name!r}; named templates are: {', '.join(NAMED)}")
    spec = NAMED[name]
    missing = [t for t in spec.needs if not _single_token(tokenizer, t)]
    if missing:
        raise TemplateError(f"chat template {name!r} needs {', '.join(missing)} as single tokens, and this "
                            f"tokenizer lacks them; pick one whose tokens it has (gemma, plain, ...)")
    eot = tokenizer.eos_token if spec.eot == "{eos}" else spec.eot
    if not eot:
        raise TemplateError(f"chat template {name!r} ends replies with the EOS token; this tokenizer has none")
    return ChatTemplate(name, spec.source, eot)


def resolve(tokenizer: Any, model_type: str, name: str | None) -> ChatTemplate:
    """The template to train with: `name` when given; else the model's own (with generation markers, or
    trl's training variant of it); else the default for its family."""
    if name:
        return named(name, tokenizer)
    own = own_template(tokenizer)
    if own and not _is_infuse_plain_gemma(own):
        eot = _own_eot(tokenizer)
        if has_markers(own):
            return ChatTemplate("own", own, eot)
        from trl.chat_template_utils import get_training_chat_template

        try:
            training = get_training_chat_template(tokenizer)
        except Exception as e:  # trl knows only some families
            raise TemplateError(f"the model's own chat template has no {{% generation %}} markers and trl has no "
                                f"training variant of it ({e}); set model.chat_template to one of "
                                f"{', '.join(NAMED)}") from None
        return ChatTemplate("own+trl", training or own, eot)
    for prefix, default in DEFAULT_BY_MODEL_TYPE:
        if model_type.startswith(prefix):
            try:
                return named(default, tokenizer)
            except TemplateError:
                break
    try:
        return named("chatml", tokenizer)
    except TemplateError:
        return named("plain", tokenizer)


def for_prompts(tokenizer: Any, model_type: str, name: str | None) -> ChatTemplate:
    """The template a model's prompts are rendered with where nothing is trained (select's IFD scorer):
    the one `resolve` gives for training, so a prompt is scored as it will be trained. A model's own
    template that training cannot use (no generation markers, and no trl variant) still renders prompts,
    so then it is used as it is."""
    try:
        return resolve(tokenizer, model_type, name)
    except TemplateError:
        own = own_template(tokenizer)
        if name or not own:
            raise
        return ChatTemplate("own", own, _own_eot(tokenizer))


def own_template(tokenizer: Any) -> str | None:
    """The tokenizer's chat template; of several named ones, the default."""
    own = tokenizer.chat_template
    if isinstance(own, dict):
        own = own.get("default")
    return own or None


def _own_eot(tokenizer: Any) -> str:
    """The end-of-turn token of a model's own template: the first of the usual ones the vocab has, else EOS."""
    for tok in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>"):
        if _single_token(tokenizer, tok) and tok in (tokenizer.chat_template or ""):
            return tok
    return tokenizer.eos_token


def install(tokenizer: Any, tpl: ChatTemplate) -> Any:
    """Set the template on the tokenizer (saved with it as chat_template.jinja) and a pad token."""
    tokenizer.chat_template = tpl.source
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def eot_ids(tokenizer: Any, tpl: ChatTemplate) -> list[int]:
    """Token ids that end a reply (for generation_config.eos_token_id): the end-of-turn token and EOS."""
    ids = [tokenizer.convert_tokens_to_ids(tpl.eot)]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def check_trainable(tokenizer: Any, tpl: ChatTemplate) -> None:
    """The template masks a reply and its end-of-turn token, and nothing of the prompt (fails loudly)."""
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
            {"role": "assistant", "content": "A"}, {"role": "user", "content": "V"}]
    out = tokenizer.apply_chat_template(msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True,
                                        chat_template=tpl.source)
    ids, mask = out["input_ids"], out["assistant_masks"]
    trained = [i for i, m in zip(ids, mask) if m]
    eot = tokenizer.convert_tokens_to_ids(tpl.eot)
    if not trained:
        raise TemplateError(f"chat template {tpl.name!r}: no assistant tokens are marked for the loss")
    if eot not in trained:
        raise TemplateError(f"chat template {tpl.name!r}: the end-of-turn token {tpl.eot!r} is outside the "
                            f"generation markers, so the model would never learn to stop")
