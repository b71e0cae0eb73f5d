"""Who answers: the base model, every model the run trained, and base and the last tuned model with retrieval.

The base model answers in the tuned models' chat template (a view of its
weights with their tokenizer), so the rows differ by what the weights know,
not by how they are asked. A tuned adapter answers as a plain merged directory
(every backend loads it the same way); a merge the run made (its card names
what it was `merged_from`) stands in for the model it was merged from, so
nothing is merged twice, and is no row of its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infuse.operators.evaluate.answer import Answerer, base_view, loadable, view_id
from infuse.operators.train.card import fingerprint, read_card, root_base


@dataclass(frozen=True)
class Tuned:
    """A model the run wrote. `name`: its row (the step that wrote it: cpt, sft, dpo); `source`: the run input
    it is (`sft.model`), as an adapter's card names the source of its base; `chat`: trained on conversations
    (not continued pretraining), so its tokenizer carries the chat template the run trained with."""

    name: str
    source: str
    path: Path
    sha256: str
    chat: bool = True


def answerers(base: str | Path, models: list[Tuned], work: Path, chat_template: str | None = None,
              rag: bool = False) -> list[Answerer]:
    """base, then the tuned models in pipeline order (`models`' order) as plain directories, then with `rag`
    base+RAG and the last tuned model with the same retrieval: closed-book over tuned+RAG says how much of what
    the model could answer with the pages it answers from memory. Adapters are merged under `work`."""
    merges = [m for m in models if _merged_from(m.path)]
    tuned = [m for m in models if m not in merges]
    stand_in = _stand_ins(tuned, merges)
    sources = {t.source: t.path for t in models}
    rows = [_row(t, stand_in.get(t.name), Path(base), sources, work) for t in tuned]
    template_from = next((r.path for t, r in zip(tuned, rows) if t.chat), rows[0].path if rows else None)
    view = base_view(base, work / "base", template_from, chat_template)
    out = [Answerer("base", str(view), model_id=view_id(view)), *rows]
    if rag:
        out.append(Answerer("base+rag", str(view), rag=True, model_id=out[0].model_id))
        if rows:
            out.append(Answerer(f"{rows[-1].name}+rag", rows[-1].path, rag=True, model_id=rows[-1].model_id))
    return out


def _row(model: Tuned, merged: Path | None, base: Path, sources: dict[str, Path], work: Path) -> Answerer:
    """A tuned model as a plain directory: the run's merge of it, itself (full weights) or its merge under work,
    into the plain model its card names (a run input, else the recipe's base). Its identity is the artifact's
    hash, and whether the merge stood in."""
    if merged is None:
        path = loadable(model.path, work / model.name, root_base(model.path, sources) or base)
    else:
        path = merged
    return Answerer(model.name, str(path), model_id=f"{model.sha256}:{'adapter' if merged is None else 'merged'}")


def _merged_from(model_dir: Path) -> str | None:
    """The fingerprint of the model a merged model was made from (None: not a merge)."""
    return ((read_card(model_dir) or {}).get("merged_from") or {}).get("fingerprint")


def _stand_ins(tuned: list[Tuned], merges: list[Tuned]) -> dict[str, Path]:
    """{name: merge directory} for every tuned model a merge was made from (matched by the fingerprint its card
    recorded; the newest such model when two match)."""
    out: dict[str, Path] = {}
    for m in merges:
        want = _merged_from(m.path)
        name = next((t.name for t in reversed(tuned) if fingerprint(t.path) == want), None)
        if name is not None:
            out[name] = m.path
    return out
