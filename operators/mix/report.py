"""The mix report: one table row per source with every decision, a summary, and a composition chart."""
from __future__ import annotations

from typing import Any

from infuse.operators.common.plots import png_figure
from infuse.operators.mix.config import DOMAIN
from infuse.operators.mix.core import MixResult


def source_table(res: MixResult) -> list[dict[str, Any]]:
    total = len(res.train) or 1
    rows = []
    for st in res.sources:
        p = st.plan
        assert p is not None
        rows.append({
            "source": st.source, "kind": st.kind, "formats": ", ".join(f"{k} {v}" for k, v in sorted(st.formats.items())),
            "rows read": st.rows_read, "malformed": st.malformed, "duplicates": st.duplicates,
            "train available": p.train_available, "eval available": p.eval_available,
            "weight": p.weight if st.source != DOMAIN else "-", "train wanted": p.target,
            "train taken": p.train_taken, "repeats": p.copies, "dropped": p.dropped, "eval taken": p.eval_taken,
            "train rows": p.train_rows, "share of train": round(p.train_rows / total, 4), "decision": p.decision,
        })
    return rows


def _md_table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    keys = list(rows[0])
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        out.append("| " + " | ".join(f"{r[k]:.1%}" if k == "share of train" else str(r[k]) for k in keys) + " |")
    return out


def _ratio_lines(res: MixResult, max_upsample: float) -> list[str]:
    """The counts and the domain share; what to do when the general sources could not fill their share."""
    domain = next(s.plan for s in res.sources if s.source == DOMAIN)
    assert domain is not None
    got = sum(s.plan.train_rows for s in res.sources if s.source != DOMAIN and s.plan)
    lines = [f"**train** {len(res.train)} rows, **eval** {len(res.eval)} rows. domain_ratio {res.ratio}: "
             f"{domain.train_rows} domain train rows, so {res.general_wanted} general train rows wanted, "
             f"{got} taken; domain share of train **{res.domain_share:.1%}**."]
    if got < res.general_wanted:
        capped = [s.source for s in res.sources if s.plan and s.plan.capped]
        lines.append(f"Not enough general data: {', '.join(capped) or 'the general sources'} at max_upsample "
                     f"{max_upsample}; the domain share is above the {res.ratio:.0%} asked. Add general data or "
                     f"raise max_upsample.")
    return lines


def _split_line(res: MixResult) -> str:
    """How the domain rows were split: by fact (a run with facts) or by chunk."""
    sp = res.split
    if sp.facts:
        return (f"Split by fact: {sp.facts_in_eval} of {sp.facts} facts in eval, each by its held-out phrasing "
                f"(its other phrasings train); every other domain row trains.")
    chunks = {s.chunk_id for s in res.train + res.eval if s.source == DOMAIN and s.chunk_id}
    eval_chunks = {s.chunk_id for s in res.eval if s.source == DOMAIN and s.chunk_id}
    return (f"Split by chunk: {len(eval_chunks)} of {len(chunks)} domain chunks in eval; "
            f"{sp.docs_eligible} document(s) large enough to need eval chunks, "
            f"{len(sp.promoted)} given one by promotion.")


def summary_lines(res: MixResult, max_upsample: float) -> list[str]:
    return [*_ratio_lines(res, max_upsample), _split_line(res)]


def markdown(res: MixResult, max_upsample: float) -> str:
    return "\n".join(["### mix", "", *summary_lines(res, max_upsample), "", *_md_table(source_table(res))])


def composition_png(res: MixResult) -> bytes:
    """Horizontal bars: each source's train rows (distinct and repeated) and eval rows, with its share."""
    sources = [s for s in res.sources if s.plan is not None][::-1]
    names = [s.source for s in sources]
    unique = [s.plan.train_taken for s in sources]  # type: ignore[union-attr]
    repeats = [s.plan.copies for s in sources]  # type: ignore[union-attr]
    evals = [s.plan.eval_taken for s in sources]  # type: ignore[union-attr]
    total = len(res.train) or 1
    with png_figure((7, 0.5 * len(names) + 1.6), dpi=100) as out:
        ax = out.fig.subplots()
        y = list(range(len(names)))
        ax.barh(y, unique, color="#4C72B0", label="train")
        ax.barh(y, repeats, left=unique, color="#8FAADC", hatch="//", label="train repeats")
        left = [u + r for u, r in zip(unique, repeats)]
        ax.barh(y, evals, left=left, color="#DD8452", label="eval")
        for i, (u, r, e) in enumerate(zip(unique, repeats, evals)):
            ax.text(u + r + e, i, f"  {(u + r) / total:.0%} of train", va="center", fontsize=8)
        ax.set_yticks(y, names)
        ax.set_xlabel("rows")
        ax.set_title(f"mix: {len(res.train)} train rows, domain {res.domain_share:.0%} (asked {res.ratio:.0%})")
        ax.legend(fontsize=8, loc="lower right")
        ax.margins(x=0.25)
        out.fig.tight_layout()
    return out.data
