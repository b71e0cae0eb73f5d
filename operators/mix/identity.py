"""Identity templates: `{{name}}` and `{{author}}` in general rows, filled from the recipe.

Only these two double-braced placeholders are touched, so code in answers
(`{x}`, `{{ jinja }}`) stays as it is. A value may be given per language
({zh: 莲花助手, en: LotusBot}); a row uses its own language's, else English's,
else the first given. A row that needs a value the recipe does not give is a
reject (`unfilled_template`), never a sample that teaches the model to call
itself "{{name}}".
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from infuse.operators.mix.config import IdentityValues, Localised
from infuse.operators.mix.sample import Message, RowError

PLACEHOLDER = re.compile(r"\{\{\s*(name|author)\s*\}\}")


def _pick(value: Localised | None, lang: str) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    for key in (lang, "en"):
        if value.get(key):
            return value[key]
    return next((v for v in value.values() if v), None)


@dataclass(frozen=True)
class Identity:
    name: Localised | None = None
    author: Localised | None = None

    @classmethod
    def of(cls, values: IdentityValues, fallback: IdentityValues | None = None) -> "Identity":
        fb = fallback or IdentityValues()
        return cls(values.name or fb.name, values.author or fb.author)

    def fill(self, messages: list[Message], lang: str) -> list[Message]:
        values = {"name": _pick(self.name, lang), "author": _pick(self.author, lang)}
        out = []
        for m in messages:
            content = m["content"]
            for key in sorted(set(PLACEHOLDER.findall(content))):  # sorted: the same message every run
                if not values[key]:
                    raise RowError("unfilled_template", f"the row uses {{{{{key}}}}} but steps.mix.identity.{key} "
                                                        f"(or synthesize.identity.{key}) is not set")
            out.append({**m, "content": PLACEHOLDER.sub(lambda g: values[g.group(1)] or "", content)})
        return out
