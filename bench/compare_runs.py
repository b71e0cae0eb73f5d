"""Are two runs' artifacts the same? Every table, model and rejects artifact of each step, byte for byte.

    .venv/bin/python bench/compare_runs.py runs/demo /elsewhere/runs/demo

A refactor that must not change what the pipeline produces is checked by
running the demo before and after it (from clones at the same path, so paths
written into cards and messages agree) and comparing the two stores. Each
store's newest manifest says which artifact each step committed; step keys
may differ (they hash the code), so artifacts are matched by step and name.
Each step's `report` is skipped (it holds wall times); export folders are compared. For a table that differs, the
first differing column and row are shown; for a model, the files that differ (a card.json that differs only in
when and how fast the model was trained, `RUN_FACTS`, counts as the same). A step's key hashes its code, so an
upstream artifact that counts as the same may still sit at another path, under another sha256 (its card's
timing is in it); a later model's card or adapter config that names it differs only in those names, and counts
as the same when they are swapped for their counterparts (said in a NOTE line).
Exit status 0 when everything matches, 1 when anything differs.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from infuse.operators.train.card import fingerprint  # noqa: E402


def newest_manifest(store: Path) -> dict[str, Any]:
    latest = store / "manifests" / "latest.json"  # the store's pointer to its newest run, when it has one
    if latest.is_file():
        run = json.loads(latest.read_text(encoding="utf-8"))["run_id"]
        return json.loads((store / "manifests" / f"{run}.json").read_text(encoding="utf-8"))
    manifests = sorted((p for p in (store / "manifests").glob("*.json") if p.name != "latest.json"),
                       key=lambda p: p.stat().st_mtime)
    if not manifests:
        raise SystemExit(f"{store}: no manifests/ (is it a run's storage folder?)")
    return json.loads(manifests[-1].read_text(encoding="utf-8"))


def artifacts(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`step/name` -> ref, for every committed output and the rejects, reports left out."""
    out = {}
    for step, rec in manifest["steps"].items():
        for name, ref in {**rec.get("outputs", {}), "rejects": rec.get("rejects")}.items():
            if ref and name != "report":  # exports are report-kind folders of data: compared
                out[f"{step}/{name}"] = ref
    return out


def local(store: Path, ref: dict[str, Any]) -> Path:
    """The artifact's path under this store (the store may have moved since the run wrote its manifest)."""
    path = ref["path"]
    return store / path[path.rindex("artifacts/"):]


def _file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def table_difference(a: Path, b: Path) -> str:
    ta, tb = pq.read_table(a), pq.read_table(b)
    if ta.schema != tb.schema:
        return f"schemas differ:\n  {ta.schema}\n  {tb.schema}"
    if ta.num_rows != tb.num_rows:
        return f"{ta.num_rows} rows vs {tb.num_rows}"
    for col in ta.column_names:
        va, vb = ta.column(col).to_pylist(), tb.column(col).to_pylist()
        for i, (x, y) in enumerate(zip(va, vb)):
            if x != y:
                return f"column {col!r}, row {i}: {str(x)[:200]!r} vs {str(y)[:200]!r}"
    return "same rows, different bytes (Parquet metadata)"


# What a model card records about the run rather than the model: when and how fast it was trained (at any depth:
# a card may hold the card of the model it was trained from).
RUN_FACTS = ("created_at", "metrics")


def _swapped(text: str, aliases: dict[str, str]) -> str:
    for old, new in aliases.items():
        text = text.replace(old, new)
    return text


def _json_keys_differing(a: Path, b: Path, aliases: dict[str, str]) -> list[str]:
    """Top-level keys of two JSON files that differ, the run facts left out (empty: same but for those)."""
    try:
        ja = json.loads(_swapped(a.read_text(encoding="utf-8"), aliases))
        jb = json.loads(b.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return ["(not JSON)"]
    if not isinstance(ja, dict) or not isinstance(jb, dict):
        return ["(not an object)"] if ja != jb else []
    ja, jb = _without_run_facts(ja), _without_run_facts(jb)
    return [k for k in sorted(set(ja) | set(jb)) if ja.get(k) != jb.get(k)]


def _without_run_facts(value: Any) -> Any:
    """The JSON value less RUN_FACTS at any depth (a DPO card holds its SFT model's card)."""
    if isinstance(value, dict):
        return {k: _without_run_facts(v) for k, v in value.items() if k not in RUN_FACTS}
    if isinstance(value, list):
        return [_without_run_facts(v) for v in value]
    return value


def _same_but_names(a: Path, b: Path, aliases: dict[str, str]) -> bool:
    """Whether a text file of run A reads as run B's once A's upstream paths and hashes are B's."""
    try:
        return _swapped(a.read_text(encoding="utf-8"), aliases) == b.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return False


def dir_difference(a: Path, b: Path, aliases: dict[str, str] | None = None) -> str | None:
    aliases = aliases or {}
    fa = {p.relative_to(a).as_posix(): p for p in a.rglob("*") if p.is_file()}
    fb = {p.relative_to(b).as_posix(): p for p in b.rglob("*") if p.is_file()}
    only = sorted(set(fa) ^ set(fb))
    changed = sorted(n for n in set(fa) & set(fb) if _file_sha(fa[n]) != _file_sha(fb[n]))
    parts = [f"only on one side: {', '.join(only)}"] if only else []
    for name in changed:
        if name.endswith("card.json"):
            keys = _json_keys_differing(fa[name], fb[name], aliases)
            if keys:
                parts.append(f"{name} differs in {', '.join(keys)}")
            continue  # the same card but for when and how fast it was trained
        if not _same_but_names(fa[name], fb[name], aliases):
            parts.append(f"{name} differs")
    return "; ".join(parts) or None


def compare(store_a: Path, store_b: Path, notes: list[str] | None = None) -> list[str]:
    """One line per artifact that differs or exists on one side only; empty when the runs agree. `notes`
    gets a line per artifact that is the same under other names (another path or sha256 upstream)."""
    a, b = artifacts(newest_manifest(store_a)), artifacts(newest_manifest(store_b))
    problems = [f"{k}: only in {store_a if k in a else store_b}" for k in sorted(set(a) ^ set(b))]
    aliases: dict[str, str] = {}  # run A's name of an artifact that counts as the same -> run B's
    for k in [k for k in a if k in b]:  # pipeline order: upstream first
        ra, rb = a[k], b[k]
        if ra["sha256"] != rb["sha256"]:
            pa_, pb_ = local(store_a, ra), local(store_b, rb)
            why = table_difference(pa_, pb_) if ra["kind"] == "table" else dir_difference(pa_, pb_, aliases)
            if why is not None:
                problems.append(f"{k}: {why}")
                continue
            if dir_difference(pa_, pb_) is not None and notes is not None:
                notes.append(f"{k}: the same, naming upstream artifacts by their paths and sha256 in this run")
        aliases.update({ra["sha256"]: rb["sha256"], ra["path"]: rb["path"]})
        if ra["kind"] == "model":  # a merged card names its source by fingerprint (adapter_config's bytes in it)
            aliases[fingerprint(local(store_a, ra))] = fingerprint(local(store_b, rb))
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store_a", type=Path)
    ap.add_argument("store_b", type=Path)
    args = ap.parse_args()
    a = artifacts(newest_manifest(args.store_a))
    notes: list[str] = []
    problems = compare(args.store_a, args.store_b, notes)
    for line in notes:
        print("NOTE", line)
    for line in problems:
        print("DIFFERS", line)
    print(f"{len(a)} artifacts compared (tables, models, exports, rejects; reports skipped): "
          f"{'all identical' if not problems else f'{len(problems)} differ'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
