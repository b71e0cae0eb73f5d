"""`select_rows`: run the recipe's selection method over QA rows and decide every row.

The models a method needs come in as functions, built by the caller only when
the method uses them (the step builds them from the recipe; tests from tiny
models): `ifd(conversations) -> IFDScores`, `quality(conversations, langs)`,
`necessity(seed_rows, conversations)` and `embed(conversations)`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from infuse.operators.select.baselines import answer_lengths, cosine_diversity, longest, random_order
from infuse.operators.select.config import SelectConfig
from infuse.operators.select.embeddings import answer_text, embed_rows
from infuse.operators.select.ifd import IFDScores
from infuse.operators.select.mods import Scores, select_mods
from infuse.operators.select.selection import DIVERSITY_LABEL, Selection, diverse, groups, top
from infuse.operators.select.superfilter import record_scores, select_by_ifd

IFDFn = Callable[[list[Any]], IFDScores]
QualityFn = Callable[[list[Any], list[str]], Scores]
NecessityFn = Callable[[list[dict[str, Any]], list[Any]], Scores]
EmbedFn = Callable[[list[Any]], np.ndarray]


def select_rows(rows: Sequence[dict[str, Any]], cfg: SelectConfig, *, ifd: IFDFn | None = None,
                quality: QualityFn | None = None, necessity: NecessityFn | None = None,
                embed: EmbedFn | None = None) -> Selection:
    n = len(rows)
    sel = Selection(n)
    conv = [r.get("messages") for r in rows]
    exempt = [i for i, r in enumerate(rows) if cfg.exempt(r.get("strategy"))]
    sel.exempt[exempt] = True
    sel.keep(exempt, "exempt")
    cand = [i for i in range(n) if not sel.exempt[i]]
    sel.stats.update({"method": cfg.method, "rows": n, "exempt": len(exempt), "candidates": len(cand)})
    group_col = [str(r.get(cfg.budget.per) or "") for r in rows] if cfg.budget.per else None
    embed_fn = embed or (lambda c: embed_rows(c, cfg.diversity.text))

    def embed_idx(idx: list[int]) -> np.ndarray:
        return embed_fn([conv[i] for i in idx])

    m = cfg.method
    if not cand:
        pass
    elif m in ("ifd", "superfilter"):
        if ifd is None:
            raise ValueError(f"select method {m} needs an IFD scorer")
        select_by_ifd(sel, cand, ifd([conv[i] for i in cand]), cfg, group_col, embed_idx)
    elif m in ("kcenter", "facility_location"):
        emb = embed_idx(cand)
        pos = {i: p for p, i in enumerate(cand)}
        label = DIVERSITY_LABEL[m]
        for g in groups(group_col, cand):
            picks = {g[p] for p in diverse(emb[[pos[i] for i in g]], cfg.budget.keep(len(g)), m, cfg.seed)}
            sel.keep([i for i in g if i in picks], label)
            sel.drop([i for i in g if i not in picks], f"not chosen by {label}",
                     f"{label} over MiniLM embeddings chose {len(picks)} of {len(g)}")
    elif m == "longest":
        lengths = answer_lengths([answer_text(conv[i]) for i in cand])
        sel.score("score_answer_length", cand, lengths)
        values = sel.scores["score_answer_length"]
        for g in groups(group_col, cand):
            kept, rest = top(g, values, cfg.budget.keep(len(g)))
            sel.keep(kept, "longest")
            sel.drop(rest, f"below {cfg.budget.label()} by answer length", f"answer shorter than the {cfg.budget.label()}")
    elif m == "random":
        for g in groups(group_col, cand):
            picks = {g[p] for p in random_order(len(g), cfg.budget.keep(len(g)), cfg.seed)}
            sel.keep([i for i in g if i in picks], "random")
            sel.drop([i for i in g if i not in picks], "not drawn at random", f"a seeded draw ({cfg.seed}) of {len(picks)}")
    elif m == "diversity":
        _deita(sel, conv, cand, cfg, group_col, embed_idx, ifd)
    elif m == "mods":
        _mods(sel, rows, conv, cand, cfg, group_col, embed_idx, quality, necessity)
    else:
        raise ValueError(f"unknown select method {m!r}")
    sel.check()
    sel.stats["kept"] = int(sel.selected.sum())
    return sel


def _deita(sel: Selection, conv: list[Any], cand: list[int], cfg: SelectConfig, group_col: list[str] | None,
           embed_idx: Callable[[list[int]], np.ndarray], ifd: IFDFn | None) -> None:
    order_by = cfg.deita.order
    if order_by == "ifd":
        if ifd is None:
            raise ValueError("select method diversity with order ifd needs an IFD scorer")
        scores = ifd([conv[i] for i in cand])
        record_scores(sel, cand, scores)
        values = sel.scores["score_ifd" if cfg.ifd.variant == "loss_ratio" else "score_ifd_ppl"]
        values = np.where(np.isfinite(values), values, -np.inf)
    elif order_by == "longest":
        sel.score("score_answer_length", cand, answer_lengths([answer_text(conv[i]) for i in cand]))
        values = sel.scores["score_answer_length"]
    else:
        values = np.zeros(sel.n)
        values[cand] = np.random.default_rng(cfg.seed).random(len(cand))  # a seeded random order
    emb = embed_idx(cand)
    pos = {i: p for p, i in enumerate(cand)}
    t = cfg.deita.threshold
    for g in groups(group_col, cand):
        order = sorted(g, key=lambda i: (-values[i], i))
        kept_pos, redundant_pos = cosine_diversity(emb[[pos[i] for i in order]], range(len(order)),
                                                   cfg.budget.keep(len(g)), t)
        kept = [order[p] for p in kept_pos]
        redundant = [order[p] for p in redundant_pos]
        sel.keep(kept, "diversity")
        sel.drop(redundant, f"cos>={t:g} to a kept row", f"MiniLM cosine similarity >= {t:g} to a row kept before it")
        done = set(kept) | set(redundant)
        sel.drop([i for i in g if i not in done], f"beyond {cfg.budget.label()} by {order_by}",
                 f"the budget was filled before this row's turn ({order_by} order)")


def _mods(sel: Selection, rows: Sequence[dict[str, Any]], conv: list[Any], cand: list[int], cfg: SelectConfig,
          group_col: list[str] | None, embed_idx: Callable[[list[int]], np.ndarray], quality: QualityFn | None,
          necessity: NecessityFn | None) -> None:
    q = cfg.mods.quality
    if quality is None:
        raise ValueError("select method mods needs a quality scorer")
    nec = cfg.mods.necessity
    if nec.enabled and necessity is None:
        raise ValueError("select method mods with necessity on needs a necessity scorer")

    def quality_fn(idx: list[int]) -> Scores:
        return quality([conv[i] for i in idx], [str(rows[i].get("lang") or "en") for i in idx])

    def necessity_fn(seed_set: list[int], rest: list[int]) -> Scores:
        return necessity([dict(rows[i]) for i in seed_set], [conv[i] for i in rest])  # type: ignore[misc]

    select_mods(sel, cand, quality=quality_fn, kind=q.kind, threshold=q.threshold, embed=embed_idx,
                budget=cfg.budget, group_col=group_col, seed=cfg.seed,
                necessity=necessity_fn if nec.enabled else None, necessity_threshold=nec.threshold,
                max_added=nec.max_added)
