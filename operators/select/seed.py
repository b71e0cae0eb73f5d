"""MoDS necessity's seed model: LoRA on the seed rows with the sft step's worker, merged into a plain
directory the transformers backend loads.

The training itself is the caller's `train(job, desc)` (the step passes the
framework's trainer: a subprocess with its log and progress bar), so this
module stays free of the flow. Everything lives under `folder`, the step's
work dir: a re-run after a kill resumes the training from its checkpoint, and
a finished merge is reused.
"""
from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infuse.operators.select.config import NecessityOptions
from infuse.operators.train.config import Job

TrainFn = Callable[[Job, str], Any]  # (the job, a progress label) -> the worker's result


def seed_model(folder: Path, nec: NecessityOptions, seed_rows: list[dict[str, Any]], base: str,
               model: dict[str, Any], train: TrainFn) -> str:
    """The merged seed model's directory. `model` is the recipe's `model:` section (template, dtype)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from infuse.operators.train.merge import merge_model

    merged = folder / "merged"
    if (merged / "config.json").is_file():
        return str(merged)
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "seed.parquet"
    pq.write_table(pa.Table.from_pylist([{"sample_id": r.get("sample_id") or f"seed{i}", "messages": r["messages"]}
                                         for i, r in enumerate(seed_rows)]), data)
    job = Job(kind="sft", base=base, output_dir=str(folder / "train"), data={"train": str(data), "eval": None},
              model=model, train=nec.train, method="lora", lora=nec.lora,
              card={"base": {"source": "model"}, "data": {"seed_rows": len(seed_rows)}})
    train(job, "select: MoDS seed model")
    tmp = folder / "merged.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    merge_model(folder / "train" / "final", tmp, dtype="float32")
    tmp.replace(merged)
    return str(merged)
