"""The training subprocess: `python -m infuse.operators.train.worker job.json`, under accelerate launch.

Reads the job, runs the trainer its `kind` names, and exits non-zero (with the
traceback on stderr, which the launcher keeps) when training fails. Every rank
runs this; rank 0 writes result.json and the events.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from infuse.operators.train.config import Job


def runner(kind: str) -> Callable[[Job], None]:
    """The training function of a job kind; a new kind adds its branch here."""
    if kind == "sft":
        from infuse.operators.train.sft import train_sft

        return train_sft
    if kind == "cpt":
        from infuse.operators.train.cpt import train_cpt

        return train_cpt
    if kind == "dpo":
        from infuse.operators.train.dpo import train_dpo

        return train_dpo
    raise ValueError(f"unknown training job kind {kind!r}")


def quiet() -> None:
    """No progress bars from the libraries (the step has its own) and no warnings that repeat per step."""
    import warnings

    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_warning()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*torch.utils.checkpoint.*")


def main(argv: list[str] | None = None) -> None:
    from infuse.operators.train.launch import set_parent_death_signal

    set_parent_death_signal()  # our parent is the accelerate launcher: if it dies, so do we
    quiet()
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m infuse.operators.train.worker JOB.json")
    job = Job.model_validate_json(Path(args[0]).read_text(encoding="utf-8"))
    runner(job.kind)(job)


if __name__ == "__main__":
    main()
