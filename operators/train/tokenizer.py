"""A base model asked in a tuned model's chat template: its weights, linked, with another tokenizer.

The base model of a run has no chat template of its own, or not the one the
run trained with; to compare it with the tuned models (evaluate's base row,
preference's base samples) it must be asked in the same template. Its files
are linked into a folder (hard links, else symbolic links: never a second copy
of the weights) and its tokenizer files are replaced: by a tuned model's, or
by its own tokenizer carrying the template training would install. A linked
file is never written through: new files replace the links.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "tokenizer.model", "generation_config.json")


def base_with_tokenizer(base: str | Path, out: str | Path, tokenizer_from: str | Path) -> Path:
    """`out`: the base model's files with the tokenizer files of `tokenizer_from` (a tuned model) instead of its
    own. Built once, atomically: a folder already there is returned as it is."""
    def fill(folder: Path) -> None:
        _link_files(Path(base), folder, skip=TOKENIZER_FILES)
        for name in TOKENIZER_FILES:
            src = Path(tokenizer_from) / name
            if src.is_file():
                shutil.copyfile(src, folder / name)

    return _build(Path(out), fill)


def base_with_template(base: str | Path, out: str | Path, chat_template: str | None = None) -> Path:
    """`out`: the base model's files with its own tokenizer carrying the chat template training would give it
    (`chat_template`: the recipe's template name, None: the default for its model type), and a generation config
    that stops at the end of a turn. Built once, atomically."""
    def fill(folder: Path) -> None:
        _link_files(Path(base), folder, skip=TOKENIZER_FILES)
        _install_template(Path(base), folder, chat_template)

    return _build(Path(out), fill)


def _build(out: Path, fill: Callable[[Path], None]) -> Path:
    """`out` filled by `fill` in a scratch folder, then renamed into place (a kill leaves no half folder)."""
    if (out / "config.json").is_file():
        return out
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    fill(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return out


def _link_files(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> None:
    """Every file at the top of `src` (what a model loader reads) linked into `dst`, but those named in `skip`."""
    for p in src.iterdir():
        if p.is_file() and p.name not in skip:
            try:
                os.link(p, dst / p.name)
            except OSError:  # another filesystem, or links not allowed there
                os.symlink(p.resolve(), dst / p.name)


def _install_template(base: Path, out: Path, name: str | None) -> None:
    """The base tokenizer with the resolved template, and the end-of-turn ids as the generation config's eos."""
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    from infuse.operators.train.templates import eot_ids, install, resolve

    tok = AutoTokenizer.from_pretrained(base)
    tpl = resolve(tok, AutoConfig.from_pretrained(base).model_type, name)
    scratch = out / ".tokenizer"  # saved apart, then moved over the links (a save would write through them)
    install(tok, tpl).save_pretrained(scratch)
    gen = GenerationConfig.from_pretrained(base) if (base / "generation_config.json").is_file() else GenerationConfig()
    gen.eos_token_id = eot_ids(tok, tpl)
    gen.save_pretrained(scratch)
    for p in scratch.iterdir():
        os.replace(p, out / p.name)
    scratch.rmdir()
