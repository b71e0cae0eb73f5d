"""The select step's report: kept/dropped counts per source document, the scorer, and the IFD histogram."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from infuse.operators.select.config import SelectConfig
from infuse.operators.select.selection import Selection


def report_parts(rows: Sequence[dict[str, Any]], sel: Selection, cfg: SelectConfig, scorer: dict[str, Any],
                 timing: dict[str, Any], sources: dict[str, str]) -> dict[str, Any]:
    """markdown, tables, images and stats of a StepReport. `scorer` and `timing` are empty when no model
    scored IFD; `sources` maps doc_id to the document's path (empty without documents)."""
    by_source = _by_source(rows, sel, sources)
    stats: dict[str, Any] = {**sel.stats, "by_source": by_source}
    md = [f"### select: {cfg.method}", "", _summary(len(rows), sel, cfg)]
    images: dict[str, bytes] = {}
    if scorer:
        md += ["", f"Scorer: `{scorer['path']}` ({scorer['engine']}, dtype {scorer['dtype']}), chat template "
                   f"{scorer['template']}."]
        stats["scorer"] = scorer
    if timing:
        md.append(f"IFD: {timing['tokens']} tokens in {timing['score_s']} s ({timing['tokens_per_s']} tokens/s), "
                  f"model load {timing['load_s']} s.")
        stats["ifd_timing"] = timing
    if sel.cut:
        images["ifd_histogram"] = _histogram(sel.cut)
        stats["ifd"] = {**stats.get("ifd", {}), "max_ifd": sel.cut["max"], "keep_from": sel.cut["keep"]}
        md += ["", _histogram_note(sel.cut["score"], sel.cut["max"], cfg.ifd.variant)]
    table = [{"source": k, **v} for k, v in sorted(by_source.items())]
    return {"markdown": "\n".join(md), "tables": {"by-source": table}, "images": images, "stats": stats}


def _by_source(rows: Sequence[dict[str, Any]], sel: Selection, sources: dict[str, str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for i, r in enumerate(rows):
        src = sources.get(r.get("doc_id") or "", r.get("doc_id") or "") or "(no source document)"
        d = out.setdefault(src, {"rows": 0, "kept": 0, "dropped": 0, "exempt": 0})
        d["rows"] += 1
        d["kept" if sel.selected[i] else "dropped"] += 1
        d["exempt"] += int(sel.exempt[i])
    return out


def _summary(n: int, sel: Selection, cfg: SelectConfig) -> str:
    per = f" per {cfg.budget.per}" if cfg.budget.per else ""
    return (f"{int(sel.selected.sum())} of {n} rows kept ({int(sel.exempt.sum())} exempt by strategy: "
            f"{', '.join(cfg.exempt_strategies) or 'none'}); budget {cfg.budget.label()}{per}.")


def _histogram(cut: dict[str, Any]) -> bytes:
    from infuse.operators.select.plots import ifd_histogram_png

    values = np.asarray(cut["values"], dtype=np.float64)
    return ifd_histogram_png(cut["score"], values, cut["max"], cut["keep"], cut["label"])


def _histogram_note(score: str, max_ifd: float | None, variant: str) -> str:
    what = ("Variant: loss ratio s(A|Q)/s(A) (the paper's IFD)." if variant == "loss_ratio" else
            "Variant: perplexity ratio exp(s(A|Q) - s(A)) (Cherry_LLM's code); it ranks rows differently "
            "from the loss ratio.")
    return (f"The histogram shows every scored row's {score}; rows right of the red line ({score} >= {max_ifd}) "
            "are dropped as the prompt does not help their answer, and the orange line is the lowest value the "
            f"budget kept. {what}")
