"""Versioned prompt files and the one loader that reads them.

Prompts live next to this module as `<name>.<lang>.v<N>.yaml` (keys `system`,
`user`, optional extra keys such as `tasks` or `questions`) or `.txt` (the user
template only). The newest version wins unless a recipe names an override file.
Every sample records `Prompt.version` ("qa_pairs.zh.v1@1a2b3c4d"), so a changed
prompt is visible in the data and invalidates cached synthesis.

An optional `examples` key lists worked examples, each the user template's
values plus `reply`; `messages()` sends each as a user/assistant turn before
the real request (few-shot), which base models need to follow a JSON contract.

Templates use `{{var}}` placeholders (and `{var}` for short config templates);
substitution is a single pass, so text pasted in is never re-expanded.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROMPT_DIR = Path(__file__).resolve().parent
_FILE_RE = re.compile(r"^(?P<name>[a-z0-9_]+)\.(?P<lang>[a-z]{2,5})\.v(?P<ver>\d+)\.(?P<ext>yaml|yml|txt)$")
_VAR_RE = re.compile(r"\{\{\s*(\w+)\s*\}\}|\{(\w+)\}")


@dataclass(frozen=True)
class Prompt:
    name: str
    version: str  # "<name>.<lang>.v<N>@<sha8>" (or "<name>.<lang>.override@<sha8>")
    system: str
    user_template: str
    sha: str
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def render(self, **values: Any) -> str:
        return render(self.user_template, **values)

    def render_system(self, **values: Any) -> str:
        return render(self.system, **values)

    @property
    def examples(self) -> list[dict[str, Any]]:
        """Worked examples: mappings of user-template values plus `reply` (malformed entries skipped)."""
        found = self.extra.get("examples") or []
        if not isinstance(found, list):
            return []
        return [e for e in found if isinstance(e, dict) and isinstance(e.get("reply"), str)]

    def messages(self, **values: Any) -> list[dict[str, str]]:
        """Chat messages for a generation request: system (when the prompt has one), then each
        example as a user/assistant turn rendered with the same user template, then the request."""
        out = []
        system = self.render_system(**values).strip()
        if system:
            out.append({"role": "system", "content": system})
        for ex in self.examples:
            shown = {**values, **{k: v for k, v in ex.items() if k != "reply"}}
            out.append({"role": "user", "content": self.render(**shown)})
            out.append({"role": "assistant", "content": ex["reply"]})
        out.append({"role": "user", "content": self.render(**values)})
        return out

    def fixed_text(self) -> str:
        """Everything a request sends besides the values: for token estimates."""
        parts = [self.system, self.user_template]
        for ex in self.examples:
            parts += [self.render(**{k: v for k, v in ex.items() if k != "reply"}), ex["reply"]]
        return "".join(parts)


def render(template: str, **values: Any) -> str:
    """Fill `{{var}}` / `{var}` placeholders whose names are given; leave any other braces alone."""

    def sub(m: re.Match[str]) -> str:
        key = m.group(1) or m.group(2)
        if key in values:
            return str(values[key])
        return m.group(0)

    return _VAR_RE.sub(sub, template)


class PromptNotFound(FileNotFoundError):
    pass


def available(name: str, lang: str, directory: Path = PROMPT_DIR) -> list[tuple[int, Path]]:
    out = []
    for p in directory.iterdir():
        m = _FILE_RE.match(p.name)
        if m and m["name"] == name and m["lang"] == lang:
            out.append((int(m["ver"]), p))
    return sorted(out)


def _read(path: Path) -> tuple[str, str, dict[str, Any]]:
    raw = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        data = yaml.safe_load(raw) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a prompt YAML must be a mapping with system/user keys")
        system = str(data.pop("system", "") or "")
        user = str(data.pop("user", "") or "")
        return system, user, data
    return "", raw, {}


def load_prompt(name: str, lang: str, override_path: str | Path | None = None) -> Prompt:
    """The newest packaged `<name>.<lang>` prompt, or the override file when given.

    Falls back to the `en` prompt, then `any`, when no file exists for `lang`.
    """
    if override_path is not None:
        path = Path(override_path)
        system, user, extra = _read(path)
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        return Prompt(name, f"{name}.{lang}.override@{sha[:8]}", system, user, sha, extra)
    for try_lang in (lang, "en", "any"):
        versions = available(name, try_lang)
        if versions:
            ver, path = versions[-1]
            system, user, extra = _read(path)
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            return Prompt(name, f"{name}.{try_lang}.v{ver}@{sha[:8]}", system, user, sha, extra)
    raise PromptNotFound(f"no prompt file {name}.{lang}.v*.yaml|txt under {PROMPT_DIR}")
