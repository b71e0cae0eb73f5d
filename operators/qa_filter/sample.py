"""A sample being filtered, and what a check can say against it (a Drop)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from infuse.operators.common.base import Reject
from infuse.operators.synthesize.schema import meta_of


def exchanges(messages: Any) -> tuple[list[dict[str, str]], list[tuple[str, str]]] | None:
    """(leading system messages, [(user, assistant), ...]) or None when the shape is wrong.

    A sample is system messages first, then user/assistant turns in strict
    alternation, ending with the assistant: one exchange for a QA pair, several
    for a dialogue.
    """
    if not isinstance(messages, list) or not messages:
        return None
    if any(not isinstance(m, dict) or not isinstance(m.get("content"), str) for m in messages):
        return None
    roles = [m.get("role") for m in messages]
    n_sys = 0
    while n_sys < len(roles) and roles[n_sys] == "system":
        n_sys += 1
    rest = roles[n_sys:]
    if not rest or len(rest) % 2 or any(r != ("user", "assistant")[k % 2] for k, r in enumerate(rest)):
        return None
    body = messages[n_sys:]
    return list(messages[:n_sys]), [(body[k]["content"], body[k + 1]["content"]) for k in range(0, len(body), 2)]


@dataclass(frozen=True)
class Drop:
    """A check's verdict against a sample: why it goes, and from which turn.

    turn 0 rejects the whole sample. A later turn cuts a dialogue before it (later
    turns build on the failing one) and the sample goes on with its first `turn`
    exchanges, to the next check.
    """

    reason: str
    message: str
    detail: dict[str, Any] = field(default_factory=dict)
    turn: int = 0


@dataclass
class Sample:
    """A row being filtered: its exchanges may be cut short when a later turn fails a check."""

    i: int
    row: dict[str, Any]
    sid: str
    system: list[dict[str, str]]
    pairs: list[tuple[str, str]]
    meta: dict[str, Any] = field(default_factory=dict)
    n_in: int = 0  # exchanges the row came with
    well_formed: bool = True  # its messages have the shape `exchanges` reads (no pairs when not)

    @classmethod
    def from_row(cls, i: int, row: dict[str, Any]) -> "Sample":
        shape = exchanges(row.get("messages"))
        system, pairs = shape if shape is not None else ([], [])
        return cls(i, row, row.get("sample_id") or f"row{i}", system, pairs, meta_of(row.get("meta")), len(pairs),
                   shape is not None)

    @property
    def strategy(self) -> str:
        """The base strategy (`summary` of `summary+paraphrase`)."""
        return (self.row.get("strategy") or "").split("+")[0]

    def messages(self) -> list[dict[str, str]]:
        out = list(self.system)
        for q, a in self.pairs:
            out += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        return out

    def take(self, drop: Drop) -> Reject:
        """The reject a verdict makes; a verdict on a later turn also cuts the dialogue before that turn."""
        if drop.turn == 0:
            return Reject(self.sid, drop.reason, drop.message, drop.detail)
        k, dropped = drop.turn, len(self.pairs) - drop.turn
        self.pairs = self.pairs[:k]
        return Reject(f"{self.sid}#turn{k}", f"{drop.reason}_turn", f"turn {k + 1}: {drop.message}; "
                      f"the dialogue keeps its first {k} turn(s)",
                      {**drop.detail, "sample_id": self.sid, "turn": k, "kept_turns": k, "dropped_turns": dropped})

    def kept_row(self) -> dict[str, Any]:
        """The row as it leaves the filter: its messages rewritten only when a turn was cut."""
        return {**self.row, "messages": self.messages()} if len(self.pairs) < self.n_in else self.row
