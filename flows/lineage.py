"""Run lineage: what each step read (by sha256, from which step) and wrote, back to the input files.

Everything here is read from a run manifest's step entries, whose `inputs_from`
name the producer of each input (`chunks <- dedup.chunks`, `model <- sft.model`)
and whose `inputs` give the sha256 read. The walk is generic: a step added
later (training, merge, evaluate) is traced the same way, and a step that
reads files from outside the pipeline lists them as `input_files` (parse).
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

Entry = dict[str, Any]


def files_digest(files: list[dict[str, Any]]) -> str:
    """One sha256 for a list of input files (path and content hash, in path order)."""
    blob = json.dumps(sorted([f["path"], f.get("sha256", "")] for f in files)).encode()
    return hashlib.sha256(blob).hexdigest()


def reads(entry: Entry) -> list[tuple[str, str, str]]:
    """(input name, producer step.artifact, sha256) for each artifact a step read."""
    shas = entry.get("inputs", {})
    return [(name, src, shas.get(name, "")) for name, src in entry.get("inputs_from", {}).items()]


def sinks(steps: dict[str, Entry]) -> list[str]:
    """`step.artifact` outputs that no other step of the run read: where the run ends."""
    read = {src for e in steps.values() for _, src, _ in reads(e)}
    return [f"{s}.{n}" for s, e in steps.items() for n in e.get("outputs", {}) if f"{s}.{n}" not in read]


def trace(steps: dict[str, Entry], artifact: str) -> dict[str, Any]:
    """The tree an artifact (`step.artifact`) came from: each node its rows and sha256, the step's
    input files at the leaves (parse's folder)."""
    step, _, name = artifact.partition(".")
    entry = steps.get(step)
    if entry is None or name not in entry.get("outputs", {}):
        return {"artifact": artifact, "missing": True, "from": []}
    ref = entry["outputs"][name]
    node: dict[str, Any] = {"artifact": artifact, "sha256": ref["sha256"], "rows": ref["rows"],
                            "kind": ref.get("kind", "table"), "state": entry.get("state"),
                            "from": [trace(steps, src) for _, src, _ in reads(entry)]}
    if entry.get("input_files") is not None:
        files = entry["input_files"]
        node["input_files"] = {"count": len(files), "kept": sum(f.get("fate") == "kept" for f in files),
                               "digest": files_digest(files)}
    return node


def trace_lines(node: dict[str, Any], depth: int = 0, seen: set[str] | None = None) -> list[str]:
    """A trace as nested markdown bullets; a subtree already shown is named, not repeated."""
    seen = seen if seen is not None else set()
    pad = "  " * depth
    if node.get("missing"):
        return [f"{pad}- `{node['artifact']}` (not in this run)"]
    size = f"{node['rows']} {'rows' if node['kind'] == 'table' else 'files'}"
    line = f"{pad}- `{node['artifact']}` {size} sha256 `{node['sha256'][:12]}` ({node['state']})"
    if node["artifact"] in seen:
        return [line + ", as above"]
    seen.add(node["artifact"])
    out = [line]
    if "input_files" in node:
        f = node["input_files"]
        out.append(f"{pad}  - {f['count']} input files ({f['kept']} kept), list sha256 `{f['digest'][:12]}`")
    for child in node["from"]:
        out += trace_lines(child, depth + 1, seen)
    return out


def lineage_markdown(steps: dict[str, Entry]) -> str:
    """The run-summary's lineage section: one row per step, then each end artifact traced to the files."""
    md = ["## Lineage", "", "| step | state | read (input ← step.artifact, sha256) | wrote (rows, sha256) | "
          "in → kept | wall s |", "|---|---|---|---|---|---|"]
    for step, e in steps.items():
        if "outputs" not in e:  # a failed or interrupted step
            md.append(f"| {step} | {e.get('state')} | | | | |")
            continue
        read = [f"{n} ← {src} `{sha[:12]}`" for n, src, sha in reads(e)]
        if e.get("input_files") is not None:
            read.append(f"{len(e['input_files'])} input files `{files_digest(e['input_files'])[:12]}`")
        wrote = [f"{n} {r['rows']} `{r['sha256'][:12]}`" for n, r in e["outputs"].items()]
        stats = e.get("stats", {})
        headline = f" {stats['headline']}" if stats.get("headline") else ""  # e.g. an eval step's score
        counts = f"{stats['rows_in']} → {stats['kept']}" if stats.get("rows_in") is not None else ""
        md.append(f"| {step} | {e.get('state')} | {'<br>'.join(read)} | {'<br>'.join(wrote)}{headline} | "
                  f"{counts} | {stats.get('wall_s', 0):.2f} |")
    md += ["", "Each end artifact, traced back to the input files:", ""]
    seen: set[str] = set()
    for end in sinks(steps):
        md += trace_lines(trace(steps, end), seen=seen)
    return "\n".join(md)
