"""Row shapes of general datasets -> chat messages: alpaca, sharegpt, messages (OpenAI / ms-swift).

The conventions are LLaMA-Factory's, so a dataset made for it means the same
here: an alpaca prompt is `instruction` and `input` joined by a newline,
`history` is a list of [prompt, response] pairs before it, `system` a column;
a sharegpt row is `conversations` of {from, value} turns (human/gpt, or
system as the first turn) with an optional `system` column.
"""
from __future__ import annotations

from typing import Any, Callable

from infuse.operators.mix.sample import Message, RowError, check_messages

USER_ROLES = {"human", "user"}
ASSISTANT_ROLES = {"gpt", "assistant", "chatgpt", "model", "bot"}
SYSTEM_ROLES = {"system"}


def _text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RowError("malformed_row", f"`{what}` is {type(value).__name__}, not text")
    return value


def _role(name: Any, i: int) -> str:
    r = str(name).strip().lower() if isinstance(name, str) else name
    if r in USER_ROLES:
        return "user"
    if r in ASSISTANT_ROLES:
        return "assistant"
    if r in SYSTEM_ROLES:
        return "system"
    raise RowError("unsupported_role", f"turn {i} is from {name!r}; mixed turns are human/user, gpt/assistant "
                                       f"and system (no tool turns)")


def _with_system(system: str, messages: list[Message]) -> list[Message]:
    if system.strip() and not (messages and messages[0]["role"] == "system"):
        return [{"role": "system", "content": system}] + messages
    return messages


def from_alpaca(get: Callable[[str], Any]) -> list[Message]:
    instruction, query = _text(get("instruction"), "instruction"), _text(get("input"), "input")
    output = get("output")
    if output is None:
        raise RowError("missing_field", "no `output`")
    output = _text(output, "output")
    prompt = "\n".join(p for p in (instruction, query) if p)
    messages: list[Message] = []
    history = get("history")
    if history is not None:
        if not isinstance(history, list):
            raise RowError("malformed_row", "`history` is not a list of [prompt, response] pairs")
        for i, pair in enumerate(history):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise RowError("malformed_row", f"history[{i}] is not a [prompt, response] pair")
            messages += [{"role": "user", "content": _text(pair[0], f"history[{i}][0]")},
                         {"role": "assistant", "content": _text(pair[1], f"history[{i}][1]")}]
    messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
    return check_messages(_with_system(_text(get("system"), "system"), messages))


def from_sharegpt(get: Callable[[str], Any]) -> list[Message]:
    turns = get("conversations")
    if not isinstance(turns, list) or not turns:
        raise RowError("missing_field", "no `conversations` list")
    messages: list[Message] = []
    for i, t in enumerate(turns):
        if not isinstance(t, dict):
            raise RowError("malformed_row", f"conversations[{i}] is not an object")
        who = t.get("from", t.get("role"))
        what = t.get("value", t.get("content"))
        messages.append({"role": _role(who, i), "content": _text(what, f"conversations[{i}].value")})
    return check_messages(_with_system(_text(get("system"), "system"), messages))


def from_messages(get: Callable[[str], Any]) -> list[Message]:
    turns = get("messages")
    if not isinstance(turns, list) or not turns:
        raise RowError("missing_field", "no `messages` list")
    messages: list[Message] = []
    for i, t in enumerate(turns):
        if not isinstance(t, dict):
            raise RowError("malformed_row", f"messages[{i}] is not an object")
        messages.append({"role": _role(t.get("role"), i), "content": _text(t.get("content"), f"messages[{i}].content")})
    return check_messages(_with_system(_text(get("system"), "system"), messages))


CONVERTERS = {"alpaca": from_alpaca, "sharegpt": from_sharegpt, "messages": from_messages}


def detect(get: Callable[[str], Any]) -> str | None:
    if get("conversations") is not None:
        return "sharegpt"
    if get("messages") is not None:
        return "messages"
    if get("instruction") is not None or get("output") is not None:
        return "alpaca"
    return None


def to_messages(row: Any, fmt: str = "auto", columns: dict[str, str] | None = None) -> tuple[list[Message], str]:
    """(messages, the format it was read as), or RowError. `columns` maps our keys to the row's."""
    if not isinstance(row, dict):
        raise RowError("malformed_row", f"a row is a JSON object; got {type(row).__name__}")
    cols = columns or {}

    def get(key: str) -> Any:
        return row.get(cols.get(key, key))

    found = detect(get) if fmt == "auto" else fmt
    if found is None:
        keys = ", ".join(sorted(map(str, row))[:8]) or "none"
        raise RowError("unknown_format", f"not alpaca (instruction/output), sharegpt (conversations) or messages; "
                                         f"keys: {keys}")
    return CONVERTERS[found](get), found
