"""The evaluation report: models x question groups with bootstrap CIs, the headline, per-document
accuracy, forgetting on general data, a bar chart, and the side-by-side table of `infuse compare`.

"Accuracy" is `contains`: the reference (or an alias) appears in the answer.
F1 and ROUGE-L say how close an answer's wording is to the reference's.
"""
from __future__ import annotations

import io
import math
from collections import defaultdict
from typing import Any

from infuse.operators.evaluate.metrics import bootstrap_ci
from infuse.operators.evaluate.questions import GROUPS

METRICS = ("contains", "f1", "rouge_l", "judge")
CLOSED_BOOK = ("domain", "paraphrase", "user")


def summary(scores: list[dict[str, Any]], models: list[str], n_boot: int = 1000, seed: int = 0) -> list[dict[str, Any]]:
    """One row per (model, group) with each metric's mean and 95% CI over items, and loss per token."""
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for s in scores:
        by[(s["model"], s["group"])].append(s)
    rows = []
    for m in models:
        for g in GROUPS:
            items = by.get((m, g))
            if not items:
                continue
            row: dict[str, Any] = {"model": m, "group": g, "n": len(items)}
            for metric in METRICS:
                vals = [s[metric] for s in items if s.get(metric) is not None]
                if not vals:
                    continue
                mean, lo, hi = bootstrap_ci([float(v) for v in vals], n_boot, seed)
                row.update({metric: round(mean, 4), f"{metric}_lo": round(lo, 4), f"{metric}_hi": round(hi, 4)})
            tok = sum(s.get("loss_tokens") or 0 for s in items)
            if tok:
                row["loss"] = round(sum(s.get("loss_sum") or 0.0 for s in items) / tok, 4)
            rows.append(row)
    return rows


def _get(rows: list[dict[str, Any]], model: str, group: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["model"] == model and r["group"] == group), None)


def headline(rows: list[dict[str, Any]], tuned: list[str]) -> dict[str, Any]:
    """Each tuned model's closed-book accuracy on the domain groups as a fraction of base+RAG's."""
    out: dict[str, Any] = {}
    for metric in ("contains", "f1"):
        ceiling = _pooled(rows, "base+rag", metric)
        base = _pooled(rows, "base", metric)
        for m in tuned:
            mine = _pooled(rows, m, metric)
            if mine is None:
                continue
            out.setdefault(m, {})[metric] = {
                "tuned": mine, "base": base, "base+rag": ceiling,
                "of_rag": round(mine / ceiling, 4) if ceiling else None}
    return out


def _pooled(rows: list[dict[str, Any]], model: str, metric: str) -> float | None:
    """A metric over the closed-book domain groups together (weighted by items)."""
    num = den = 0.0
    for g in CLOSED_BOOK:
        r = _get(rows, model, g)
        if r and metric in r:
            num += r[metric] * r["n"]
            den += r["n"]
    return round(num / den, 4) if den else None


def forgetting(rows: list[dict[str, Any]], tuned: list[str]) -> list[dict[str, Any]]:
    """General data, each tuned model against base: the scores and the loss per token, with the delta."""
    base = _get(rows, "base", "general")
    out = []
    for m in tuned:
        r = _get(rows, m, "general")
        if not (base and r):
            continue
        row: dict[str, Any] = {"model": m, "n": r["n"]}
        for k in ("contains", "f1", "rouge_l", "loss"):
            if k in r and k in base:
                row.update({f"{k}_base": base[k], k: r[k], f"{k}_delta": round(r[k] - base[k], 4)})
        out.append(row)
    return out


def per_document(scores: list[dict[str, Any]], models: list[str]) -> list[dict[str, Any]]:
    """Accuracy (contains) and F1 per source document and model, over the closed-book domain groups."""
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for s in scores:
        if s["group"] in CLOSED_BOOK and s.get("doc_id"):
            by[(s["doc_id"], s["model"])].append(s)
    docs = sorted({d for d, _ in by})
    rows = []
    for d in docs:
        row: dict[str, Any] = {"doc_id": d}
        for m in models:
            items = by.get((d, m), [])
            if items:
                row["n"] = len(items)
                row[f"{m} contains"] = round(sum(s["contains"] for s in items) / len(items), 3)
                row[f"{m} f1"] = round(sum(s["f1"] for s in items) / len(items), 3)
        rows.append(row)
    return rows


def _cell(r: dict[str, Any] | None, metric: str) -> str:
    if not r or metric not in r:
        return "-"
    if f"{metric}_lo" not in r:
        return f"{r[metric]:.3f}"
    return f"{r[metric]:.3f} [{r[f'{metric}_lo']:.2f}, {r[f'{metric}_hi']:.2f}]"


def table_text(rows: list[dict[str, Any]], metric: str = "contains", models: list[str] | None = None) -> str:
    """A plain-text table: models down, groups across, `metric` with its CI (for the terminal)."""
    models = models or list(dict.fromkeys(r["model"] for r in rows))
    groups = [g for g in GROUPS if any(r["group"] == g for r in rows)]
    head = [f"{metric:10s}"] + [f"{g} (n={next(r['n'] for r in rows if r['group'] == g)})" for g in groups]
    lines = [head] + [[m] + [_cell(_get(rows, m, g), metric) for g in groups] for m in models]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)


def compare_text(a: list[dict[str, Any]], b: list[dict[str, Any]], names: tuple[str, str],
                 metrics: tuple[str, ...] = ("contains", "f1")) -> str:
    """Both runs' tables side by side, with B - A for every model and group they share."""
    models = list(dict.fromkeys([r["model"] for r in a] + [r["model"] for r in b]))
    lines = [["model", "group", "metric", names[0], names[1], "delta"]]
    for m in models:
        for g in GROUPS:
            ra, rb = _get(a, m, g), _get(b, m, g)
            if not (ra or rb):
                continue
            for metric in metrics:
                va = ra.get(metric) if ra else None
                vb = rb.get(metric) if rb else None
                if va is None and vb is None:
                    continue
                delta = f"{vb - va:+.3f}" if va is not None and vb is not None else "-"
                lines.append([m, g, metric, _cell(ra, metric), _cell(rb, metric), delta])
    widths = [max(len(line[i]) for line in lines) for i in range(6)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)


def _md(rows: list[dict[str, Any]], cols: list[str]) -> list[str]:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join("" if r.get(c) is None else str(r.get(c)) for c in cols) + " |")
    return out


def markdown(rows: list[dict[str, Any]], head: dict[str, Any], forget: list[dict[str, Any]],
             docs: list[dict[str, Any]], notes: list[str], rubric: str | None) -> str:
    md = ["## Evaluation", ""]
    for m, h in head.items():
        c, f = h.get("contains", {}), h.get("f1", {})
        if c.get("of_rag") is not None:
            frac = f"{c['of_rag']:.0%}"
        else:
            frac = "n/a (no base+RAG row)" if c.get("base+rag") is None else "n/a (base+RAG answered none)"
        md.append(f"**{m}** closed-book accuracy {c.get('tuned')} vs base {c.get('base')} and base+RAG "
                  f"{c.get('base+rag')}: **{frac} of the RAG ceiling** (F1 {f.get('tuned')} vs base+RAG "
                  f"{f.get('base+rag')}).")
    md += ["", "Accuracy (`contains`: the reference or an alias appears in the answer), mean [95% bootstrap CI]:",
           "", "```", table_text(rows, "contains"), "```", "", "Token F1 (characters for Chinese, words for English):",
           "", "```", table_text(rows, "f1"), "```", "", "ROUGE-L F1:", "", "```", table_text(rows, "rouge_l"), "```"]
    if any("judge" in r for r in rows):
        md += ["", "LLM judge (1-5):", "", "```", table_text(rows, "judge"), "```"]
    if forget:
        md += ["", "### Forgetting (general eval split, tuned vs base)", ""]
        cols = ["model", "n"] + [c for k in ("contains", "f1", "loss") for c in (f"{k}_base", k, f"{k}_delta")
                                 if any(c in r for r in forget)]
        md += _md(forget, cols)
    if docs:
        md += ["", "### Per document (closed-book domain groups)", ""]
        md += _md(docs, list(dict.fromkeys(k for r in docs for k in r)))
    if notes:
        md += ["", "### Notes", ""] + [f"- {n}" for n in notes]
    if rubric:
        md += ["", "### Judge rubric", "", "```", rubric, "```"]
    return "\n".join(md)


def bar_png(rows: list[dict[str, Any]], metric: str = "contains") -> bytes:
    """Grouped bars: question groups across, one bar per model, with CI whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in rows))
    groups = [g for g in GROUPS if any(r["group"] == g for r in rows)]
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(groups) + 2), 3.6), dpi=100)
    width = 0.8 / max(1, len(models))
    for i, m in enumerate(models):
        xs, ys, lo, hi = [], [], [], []
        for j, g in enumerate(groups):
            r = _get(rows, m, g)
            if r and metric in r and not math.isnan(r[metric]):
                xs.append(j + (i - (len(models) - 1) / 2) * width)
                ys.append(r[metric])
                lo.append(max(0.0, r[metric] - r[f"{metric}_lo"]))
                hi.append(max(0.0, r[f"{metric}_hi"] - r[metric]))
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=m)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(metric)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{metric} by question group (95% CI)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
