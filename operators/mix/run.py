"""`run_mix`: the domain QA rows and the recipe's mix section -> the rows of both splits, the export files and
the report's parts.

Plain inputs and outputs, so it runs without a flow: the step reads `qa`,
passes the folder the exports go to, and writes what comes back.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infuse.operators.common.base import Reject
from infuse.operators.mix.config import IdentityValues, MixConfig
from infuse.operators.mix.core import mix
from infuse.operators.mix.export import write_exports
from infuse.operators.mix.report import composition_png, markdown, source_table


@dataclass
class MixRun:
    """What the mix step writes and reports."""

    train: list[dict[str, Any]]
    eval: list[dict[str, Any]]
    rejects: list[Reject]
    exports: dict[str, int]  # relative path -> rows
    rows_in: int  # rows read, over all sources
    kept: int  # distinct rows in train and eval (a repeated row counts once)
    markdown: str
    sources: list[dict[str, Any]]  # the report's table: one row per source
    composition: bytes  # PNG
    stats: dict[str, Any] = field(default_factory=dict)


def run_mix(qa_rows: list[dict[str, Any]], config: MixConfig, identity_fallback: IdentityValues,
            exports_dir: Path) -> MixRun:
    """Mix the QA rows with the general sources, split and ratio them, and export both splits to exports_dir."""
    res = mix(qa_rows, config, identity_fallback)
    files = write_exports(exports_dir, {"train": [s.messages for s in res.train],
                                        "eval": [s.messages for s in res.eval]}, config.exports)
    rows = source_table(res)
    return MixRun(
        [s.to_row() for s in res.train], [s.to_row() for s in res.eval], res.rejects, files,
        rows_in=sum(s.rows_read for s in res.sources), kept=len({s.ref for s in res.train + res.eval}),
        markdown=markdown(res, config.max_upsample), sources=rows, composition=composition_png(res),
        stats={"train_rows": len(res.train), "eval_rows": len(res.eval), "domain_share": round(res.domain_share, 4),
               "general_wanted": res.general_wanted, "exports": files, "sources": {r["source"]: r for r in rows}})
