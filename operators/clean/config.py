"""Recipe section `clean`: an ordered list of mappers by data-juicer (or infuse) name."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from infuse.operators.common.base import Strict

Lang = Literal["zh", "en"]
Kind = Literal["text", "table", "code", "record"]


class Gate(Strict):
    """Where an op applies. Unset fields mean 'everywhere' (unless an auto gate applies)."""

    only_formats: list[str] | None = None
    skip_formats: list[str] | None = None
    only_kinds: list[Kind] | None = None
    skip_kinds: list[Kind] | None = None
    only_lang: list[Lang] | None = None

    def applies(self, fmt: str | None, kind: str | None, lang: str) -> bool:
        if self.only_formats is not None and fmt not in self.only_formats:
            return False
        if self.skip_formats is not None and fmt in self.skip_formats:
            return False
        if self.only_kinds is not None and kind not in self.only_kinds:
            return False
        if self.skip_kinds is not None and kind in self.skip_kinds:
            return False
        if self.only_lang is not None and lang not in self.only_lang:
            return False
        return True


GATE_FIELDS = ("only_formats", "skip_formats", "only_kinds", "skip_kinds", "only_lang")

# data-juicer ops that damage Chinese text or Markdown/code when applied
# everywhere. If a recipe names one and sets none of the gate fields, this
# gate is used (and reported in Cleaner.notes / QualityFilter.notes).
# Set any gate field (e.g. only_lang: [zh, en]) to override.
AUTO_GATES: dict[str, dict[str, Any]] = {
    # maps ，。：？！（）【】《》 to ASCII
    "punctuation_normalization_mapper": {"only_lang": ["en"], "skip_kinds": ["code"]},
    # ftfy's width fixing turns ，：？！（） into ASCII, uncurls “”
    "fix_unicode_mapper": {"only_lang": ["en"]},
    # a URL swallows the rest of a Chinese sentence; key:value taken for a URL
    "clean_links_mapper": {"only_lang": ["en"], "skip_kinds": ["code"]},
    # drops leading lines starting with #, // or -- (Markdown headings, comments)
    "clean_copyright_mapper": {"only_kinds": ["code"]},
    # turns tabs into spaces and strips indentation
    "whitespace_normalization_mapper": {"skip_kinds": ["code"]},
    # split on whitespace: a Chinese paragraph counts as about one word
    "words_num_filter": {"only_lang": ["en"]},
    "word_repetition_filter": {"only_lang": ["en"]},
    "stopwords_filter": {"only_lang": ["en"]},
    "flagged_words_filter": {"only_lang": ["en"]},
    # counts full-width punctuation and some CJK characters as special
    "special_characters_filter": {"only_lang": ["en"]},
}


class OpSpec(Gate):
    """One op of a recipe: its registered name, its params and where it applies."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    def gate(self) -> tuple[Gate, bool]:
        """The effective gate and whether it came from AUTO_GATES."""
        explicit = {f: getattr(self, f) for f in GATE_FIELDS if f in self.model_fields_set}
        if not explicit and self.name in AUTO_GATES:
            return Gate(**AUTO_GATES[self.name]), True
        return Gate(**{f: getattr(self, f) for f in GATE_FIELDS}), False


class CleanConfig(Strict):

    ops: list[OpSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names(self) -> "CleanConfig":
        from infuse.operators.common import dj
        from infuse.operators.clean.ops import INFUSE_MAPPERS

        for op in self.ops:
            dj.check_op_name(op.name, "mapper", extra=list(INFUSE_MAPPERS))
        return self

    @classmethod
    def default(cls) -> "CleanConfig":
        """The design notes' mappers, with Chinese- and Markdown-safe versions where dj's are not."""
        return cls(
            ops=[
                OpSpec(name="clean_email_mapper"),
                OpSpec(name="infuse_clean_links", skip_kinds=["code"]),
                OpSpec(name="infuse_fix_unicode"),
                OpSpec(name="infuse_punctuation_normalization", skip_kinds=["code"]),
                OpSpec(name="infuse_whitespace_normalization"),
                OpSpec(name="infuse_clean_copyright"),
            ]
        )
