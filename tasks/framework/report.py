"""A step's report: the markdown summary saved with its outputs, and the same in the Prefect UI.

Each step publishes `<step>-counts` (rows in / kept / rejected, by reason) and
`<step>-summary` (its artifacts with rows, sha256 and paths, the wall time,
whatever markdown the step adds, its plots inline), plus one table artifact
per extra table it reports. Outside a Prefect run nothing is published.
"""
from __future__ import annotations

import base64
from typing import Any

from infuse.storage import ArtifactRef, ArtifactStore
from infuse.tasks.framework.progress import _in_prefect_run


def slug(step: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes."""
    return step.replace("_", "-")


def summary_markdown(step: str, key: str, store: ArtifactStore, refs: dict[str, ArtifactRef],
                     stats: dict[str, Any], rep: Any, inline_images: bool = False) -> str:
    lines = [f"## {step}", "", f"cache key `{key}`", "",
             "| artifact | kind | rows / files | sha256 | path |", "|---|---|---|---|---|"]
    for name, ref in refs.items():
        lines.append(f"| {name} | {ref.kind} | {ref.rows} | `{ref.sha256[:16]}` | `{store.display(ref.path)}` |")
    lines += ["", f"wall time: {stats.get('wall_s', 0):.2f} s"]
    if rep.markdown:
        lines += ["", rep.markdown]
    for name, png in rep.images.items():
        src = f"data:image/png;base64,{base64.b64encode(png).decode()}" if inline_images else f"{name}.png"
        lines += ["", f"**{name}**", "", f"![{name}]({src})"]
    return "\n".join(lines)


def counts_table(stats: dict[str, Any], rep: Any) -> list[dict[str, Any]]:
    rows = [{"metric": f"{rep.unit_in} in", "count": rep.rows_in},
            {"metric": f"{rep.unit_out} kept", "count": rep.kept},
            {"metric": "rejected", "count": stats.get("rejected", 0)}]
    rows += [{"metric": f"rejected: {r}", "count": n} for r, n in stats.get("rejected_by_reason", {}).items()]
    return rows


def publish(step: str, store: ArtifactStore, refs: dict[str, ArtifactRef], stats: dict[str, Any], rep: Any) -> None:
    if not _in_prefect_run():
        return
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    s = slug(step)
    key = next(iter(refs.values())).key
    create_table_artifact(key=f"{s}-counts", table=counts_table(stats, rep),
                          description=f"{step}: rows in / kept / rejected, by reason")
    create_markdown_artifact(key=f"{s}-summary", markdown=summary_markdown(step, key, store, refs, stats, rep,
                                                                           inline_images=True),
                             description=f"{step}: outputs, hashes, paths")
    for name, table in rep.tables.items():
        if table:
            create_table_artifact(key=f"{s}-{slug(name)}", table=table, description=f"{step}: {name}")
