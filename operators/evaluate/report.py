"""The evaluation report: models x question groups with bootstrap CIs, the headline, per-fact and per-document
accuracy, forgetting on general data, flagged answers, bar charts, and the side-by-side table of `infuse compare`.

"Accuracy" is `strict`: every number, date and code of the reference (or an alias) in the answer, and no rival
value (`metrics.strict_detail`). `contains` (the reference appears in the answer) stays beside it, as do F1 and
ROUGE-L, which say how close an answer's wording is to the reference's.
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from infuse.operators.common.plots import png_figure
from infuse.operators.evaluate.metrics import bootstrap_ci
from infuse.operators.evaluate.questions import CLOSED_BOOK, GROUPS

METRICS = ("strict", "contains", "f1", "rouge_l", "judge")
FLAGS = ("empty", "echo", "repeat")


def summary(scores: list[dict[str, Any]], models: list[str], n_boot: int = 1000, seed: int = 0) -> list[dict[str, Any]]:
    """One row per (model, group) with each metric's mean and 95% CI over items, and loss per token."""
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for s in scores:
        by[(s["model"], s["group"])].append(s)
    return [_summary_row(m, g, by[(m, g)], n_boot, seed) for m in models for g in GROUPS if by.get((m, g))]


def _summary_row(model: str, group: str, items: list[dict[str, Any]], n_boot: int, seed: int) -> dict[str, Any]:
    row: dict[str, Any] = {"model": model, "group": group, "n": len(items)}
    for metric in METRICS:
        vals = [float(s[metric]) for s in items if s.get(metric) is not None]
        if vals:
            mean, lo, hi = bootstrap_ci(vals, n_boot, seed)
            row.update({metric: round(mean, 4), f"{metric}_lo": round(lo, 4), f"{metric}_hi": round(hi, 4)})
    row["flagged"] = sum(1 for s in items if s.get("flag"))
    tok = sum(s.get("loss_tokens") or 0 for s in items)
    if tok:
        row["loss"] = round(sum(s.get("loss_sum") or 0.0 for s in items) / tok, 4)
    return row


def _get(rows: list[dict[str, Any]], model: str, group: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["model"] == model and r["group"] == group), None)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a is not None and b else None


def _points(a: float | None, b: float | None) -> float | None:
    return round(100 * (a - b), 2) if a is not None and b is not None else None


def headline(rows: list[dict[str, Any]], tuned: list[str]) -> dict[str, Any]:
    """The run's answer on the strict score, for the last tuned model (dpo, else sft, else cpt): its closed-book
    accuracy on the domain, paraphrase and user questions together, base's, its own with retrieval (tuned+RAG,
    the ceiling), closed-book / tuned+RAG, the gain over base in points, and forgetting on the general items
    (base minus tuned, in points; positive = it forgot). {} when the run has no tuned model."""
    if not tuned:
        return {}
    m, metric = tuned[-1], "strict"
    mine, base = _pooled(rows, m, metric), _pooled(rows, "base", metric)
    with_rag = _pooled(rows, f"{m}+rag", metric)
    gb, gm = _get(rows, "base", "general"), _get(rows, m, "general")
    return {"metric": metric, "model": m, "closed_book": mine, "base": base, "tuned+rag": with_rag,
            "base+rag": _pooled(rows, "base+rag", metric), "of_tuned_rag": _ratio(mine, with_rag),
            "gain_points": _points(mine, base),
            "forgetting_points": _points(gb.get(metric), gm.get(metric)) if gb and gm else None,
            "forgetting_f1_points": _points(gb.get("f1"), gm.get("f1")) if gb and gm else None,
            "forgetting_loss_delta": round(gm["loss"] - gb["loss"], 4) if gb and gm and "loss" in gb and "loss" in gm
            else None}


def closed_book(rows: list[dict[str, Any]], tuned: list[str]) -> dict[str, Any]:
    """Every tuned model's closed-book score per metric (strict, contains, f1), beside base, base+RAG and its own
    +RAG row when the run has one, with the fractions of both ceilings."""
    out: dict[str, Any] = {}
    for m in tuned:
        for metric in ("strict", "contains", "f1"):
            mine = _pooled(rows, m, metric)
            if mine is None:
                continue
            ceiling, own = _pooled(rows, "base+rag", metric), _pooled(rows, f"{m}+rag", metric)
            out.setdefault(m, {})[metric] = {"tuned": mine, "base": _pooled(rows, "base", metric), "base+rag": ceiling,
                                             "tuned+rag": own, "of_rag": _ratio(mine, ceiling),
                                             "of_tuned_rag": _ratio(mine, own)}
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
        for k in ("strict", "contains", "f1", "rouge_l", "loss"):
            if k in r and k in base:
                row.update({f"{k}_base": base[k], k: r[k], f"{k}_delta": round(r[k] - base[k], 4)})
        out.append(row)
    return out


def per_fact(scores: list[dict[str, Any]], items: list[Any], models: list[str]) -> list[dict[str, Any]]:
    """Which model knows which fact: one row per domain and user item (question, reference, fact ids), one
    column per model, 1 when its answer is strictly right, 0 when not, None when it was not asked."""
    got = {(s["model"], s["item_id"]): s.get("strict") for s in scores}
    rows = []
    for it in items:
        if it.group not in ("domain", "user"):
            continue
        row: dict[str, Any] = {"item_id": it.item_id, "question": it.question, "reference": it.reference,
                               "fact_ids": ", ".join(it.fact_ids)}
        for m in models:
            v = got.get((m, it.item_id))
            row[m] = None if v is None else int(v >= 1.0)
        rows.append(row)
    return rows


def flag_counts(scores: list[dict[str, Any]], models: list[str]) -> dict[str, dict[str, int]]:
    """Flagged answers per model: how many were empty, only echoed the question, or only repeated themselves."""
    out = {m: {f: 0 for f in FLAGS} for m in models}
    for s in scores:
        if s.get("flag") and s["model"] in out:
            out[s["model"]][s["flag"]] = out[s["model"]].get(s["flag"], 0) + 1
    return out


def per_document(scores: list[dict[str, Any]], models: list[str]) -> list[dict[str, Any]]:
    """Accuracy (strict), contains and F1 per source document and model, over the closed-book domain groups."""
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for s in scores:
        if s["group"] in CLOSED_BOOK and s.get("doc_id"):
            by[(s["doc_id"], s["model"])].append(s)
    rows = []
    for d in sorted({d for d, _ in by}):
        row: dict[str, Any] = {"doc_id": d}
        for m in models:
            row.update(_doc_cells(m, by.get((d, m), [])))
        rows.append(row)
    return rows


def _doc_cells(model: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """One model's columns of a per-document row (none when it answered nothing about the document)."""
    if not items:
        return {}
    return {"n": len(items), f"{model} strict": round(sum(s.get("strict") or 0.0 for s in items) / len(items), 3),
            f"{model} contains": round(sum(s["contains"] for s in items) / len(items), 3),
            f"{model} f1": round(sum(s["f1"] for s in items) / len(items), 3)}


def _cell(r: dict[str, Any] | None, metric: str) -> str:
    if not r or metric not in r:
        return "-"
    if f"{metric}_lo" not in r:
        return f"{r[metric]:.3f}"
    return f"{r[metric]:.3f} [{r[f'{metric}_lo']:.2f}, {r[f'{metric}_hi']:.2f}]"


def _groups(rows: list[dict[str, Any]]) -> list[str]:
    """The question groups the table has, in GROUPS order."""
    return [g for g in GROUPS if any(r["group"] == g for r in rows)]


def _columns(lines: list[list[str]]) -> str:
    """Rows of cells as left-aligned text columns."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)


def table_text(rows: list[dict[str, Any]], metric: str = "strict", models: list[str] | None = None) -> str:
    """A plain-text table: models down, groups across, `metric` with its CI (for the terminal)."""
    if not any(metric in r for r in rows):
        return f"(no {metric} scores in this table)"
    models = models or list(dict.fromkeys(r["model"] for r in rows))
    groups = _groups(rows)
    head = [f"{metric:10s}"] + [f"{g} (n={next(r['n'] for r in rows if r['group'] == g)})" for g in groups]
    return _columns([head] + [[m] + [_cell(_get(rows, m, g), metric) for g in groups] for m in models])


def compare_text(a: list[dict[str, Any]], b: list[dict[str, Any]], names: tuple[str, str],
                 metrics: tuple[str, ...] = ("contains", "f1")) -> str:
    """Both runs' tables side by side, with B - A for every model and group they share."""
    models = list(dict.fromkeys([r["model"] for r in a] + [r["model"] for r in b]))
    lines = [["model", "group", "metric", names[0], names[1], "delta"]]
    for m in models:
        for g in GROUPS:
            lines += _compare_lines(m, g, _get(a, m, g), _get(b, m, g), metrics)
    return _columns(lines)


def _compare_lines(model: str, group: str, ra: dict[str, Any] | None, rb: dict[str, Any] | None,
                   metrics: tuple[str, ...]) -> list[list[str]]:
    """One line per metric either run has for this model and group."""
    lines = []
    for metric in metrics:
        va, vb = (ra or {}).get(metric), (rb or {}).get(metric)
        if va is None and vb is None:
            continue
        delta = f"{vb - va:+.3f}" if va is not None and vb is not None else "-"
        lines.append([model, group, metric, _cell(ra, metric), _cell(rb, metric), delta])
    return lines


def _md(rows: list[dict[str, Any]], cols: list[str]) -> list[str]:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join("" if r.get(c) is None else str(r.get(c)) for c in cols) + " |")
    return out


def _fmt(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{v:.0%}" if pct else f"{v:.3f}"


def _cut(text: str, n: int) -> str:
    """One markdown table cell: at most n characters, one line, no column bar."""
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= n else text[: n - 1] + "…"


def headline_text(head: dict[str, Any]) -> list[str]:
    """The headline as sentences: strict closed-book vs base and vs tuned+RAG, and forgetting."""
    if not head:
        return ["No tuned model in this run: nothing to compare with base."]
    m = head["model"]
    gain = "" if head["gain_points"] is None else f" ({head['gain_points']:+.1f} points)"
    ratio = _fmt(head["of_tuned_rag"], pct=True)
    if head["tuned+rag"] is None:
        ratio += " (no tuned+RAG row)"
    out = [f"**{m}** closed-book strict accuracy {_fmt(head['closed_book'])} (domain, paraphrase and user "
           f"questions) vs base {_fmt(head['base'])}{gain}; with retrieval {m}+RAG {_fmt(head['tuned+rag'])}, base+RAG "
           f"{_fmt(head['base+rag'])}: closed-book is **{ratio} of {m}+RAG**."]
    if head["forgetting_points"] is not None or head["forgetting_loss_delta"] is not None:
        pts = "n/a" if head["forgetting_points"] is None else f"{head['forgetting_points']:+.1f} points strict"
        f1p = "" if head["forgetting_f1_points"] is None else f", {head['forgetting_f1_points']:+.1f} points F1"
        loss = "" if head["forgetting_loss_delta"] is None else f", loss per token {head['forgetting_loss_delta']:+.3f}"
        out.append(f"Forgetting on the general items (base minus {m}; positive = forgot): {pts}{f1p}{loss}.")
    return out


def markdown(rows: list[dict[str, Any]], head: dict[str, Any], forget: list[dict[str, Any]],
             docs: list[dict[str, Any]], notes: list[str], rubric: str | None,
             facts: list[dict[str, Any]] | None = None, flags: dict[str, dict[str, int]] | None = None,
             models: list[str] | None = None, max_fact_rows: int = 20) -> str:
    """The report: the headline, the score tables, then each section that has something to show."""
    md = ["## Evaluation", ""] + headline_text(head) + _score_tables(rows)
    md += _flags_md(flags or {}) + _facts_md(facts or [], models, max_fact_rows) + _forgetting_md(forget)
    if docs:
        md += ["", "### Per document (closed-book domain groups)", ""]
        md += _md(docs, list(dict.fromkeys(k for r in docs for k in r)))
    if notes:
        md += ["", "### Notes", ""] + [f"- {n}" for n in notes]
    if rubric:
        md += ["", "### Judge rubric", "", "```", rubric, "```"]
    return "\n".join(md)


_TABLES = (("strict", "Accuracy (`strict`: every number, date and code of the reference in the answer and no rival "
                      "value; a flagged answer scores 0), mean [95% bootstrap CI]:"),
           ("contains", "`contains` (the reference or an alias appears in the answer):"),
           ("f1", "Token F1 (characters for Chinese, words for English):"),
           ("rouge_l", "ROUGE-L F1:"))


def _score_tables(rows: list[dict[str, Any]]) -> list[str]:
    """strict, contains, F1 and ROUGE-L tables, and the judge's when answers were graded."""
    tables = [*_TABLES, ("judge", "LLM judge (1-5):")] if any("judge" in r for r in rows) else _TABLES
    md: list[str] = []
    for metric, title in tables:
        md += ["", title, "", "```", table_text(rows, metric), "```"]
    return md


def _flags_md(flags: dict[str, dict[str, int]]) -> list[str]:
    if not any(sum(v.values()) for v in flags.values()):
        return []
    return ["", "### Flagged answers (strict 0)", ""] + _md([{"model": m, **v} for m, v in flags.items()],
                                                             ["model", *FLAGS])


def _facts_md(facts: list[dict[str, Any]], models: list[str] | None, max_rows: int) -> list[str]:
    """How many facts each model knows, and the first max_rows rows of the per-fact table."""
    if not facts:
        return []
    models = models or [k for k in facts[0] if k not in ("item_id", "question", "reference", "fact_ids")]
    known = [f"{m} {sum(1 for r in facts if r.get(m) == 1)}/{sum(1 for r in facts if r.get(m) is not None)}"
             for m in models]
    md = ["", "### Per fact (strictly right: 1)", "", "Known: " + ", ".join(known) + ".", ""]
    md += _md([{**r, "question": _cut(r["question"], 60), "reference": _cut(r["reference"], 40)}
               for r in facts[:max_rows]], ["question", "reference", "fact_ids", *models])
    if len(facts) > max_rows:
        md.append(f"\n({len(facts) - max_rows} more rows in the `per-fact` table)")
    return md


def _forgetting_md(forget: list[dict[str, Any]]) -> list[str]:
    if not forget:
        return []
    cols = ["model", "n"] + [c for k in ("strict", "contains", "f1", "loss") for c in (f"{k}_base", k, f"{k}_delta")
                             if any(c in r for r in forget)]
    return ["", "### Forgetting (general eval split, tuned vs base)", ""] + _md(forget, cols)


def bar_png(rows: list[dict[str, Any]], metric: str = "strict") -> bytes:
    """Grouped bars: question groups across, one bar per model, with CI whiskers."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    groups = _groups(rows)
    width = 0.8 / max(1, len(models))
    with png_figure((max(5, 1.6 * len(groups) + 2), 3.6), dpi=100) as out:
        ax = out.fig.subplots()
        for i, m in enumerate(models):
            xs, ys, lo, hi = _bars(rows, m, groups, metric)
            ax.bar([x + (i - (len(models) - 1) / 2) * width for x in xs], ys, width, yerr=[lo, hi], capsize=3,
                   label=m)
        ax.set_xticks(range(len(groups)), groups)
        ax.set_ylabel(metric)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{metric} by question group (95% CI)")
        ax.legend(fontsize=8)
        out.fig.tight_layout()
    return out.data


def _bars(rows: list[dict[str, Any]], model: str, groups: list[str],
          metric: str) -> tuple[list[int], list[float], list[float], list[float]]:
    """One model's bars: group positions, means, and the CI's distance below and above each mean."""
    xs, ys, lo, hi = [], [], [], []
    for j, g in enumerate(groups):
        r = _get(rows, model, g)
        if r and metric in r and not math.isnan(r[metric]):
            xs.append(j)
            ys.append(r[metric])
            lo.append(max(0.0, r[metric] - r[f"{metric}_lo"]))
            hi.append(max(0.0, r[f"{metric}_hi"] - r[metric]))
    return xs, ys, lo, hi
