"""What a step says when it kept nothing (the file checks themselves: operators/common/file_checks.py).

`infuse validate` (and `infuse run`, before any step starts) calls every enabled step's `check(cfg)`; the
files a step's options name are checked there (operators/common/input_files.py). A step whose every input
was rejected raises AllRejected with `nothing_kept`'s summary, so the run fails naming the reasons.
"""
from __future__ import annotations

from collections import Counter


class AllRejected(ValueError):
    """A step had inputs and every one of them was rejected: the run has nothing to go on with."""


def nothing_kept(what: str, fates: list[tuple[str, str]]) -> str:
    """`all 3 input files were rejected (too_large: 2 — a.pdf is 12.3 MB, over max_file_mb 5; corrupt: 1 — ...);
    nothing to do`, from (reason, how it happened to one input) per input: reasons by count, one example each."""
    counts = Counter(reason for reason, _ in fates)
    example: dict[str, str] = {}
    for reason, text in fates:
        example.setdefault(reason, text)
    by_count = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    parts = [f"{reason}: {n} — {example[reason]}" for reason, n in by_count]
    return f"all {len(fates)} {what} were rejected ({'; '.join(parts)}); nothing to do"
