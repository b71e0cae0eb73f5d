"""Cross-source dedup on normalised prompts: the first sample with a prompt is kept.

Samples come in priority order (the domain QA first, then the general sources
in recipe order), so a general row never displaces a domain one. The reject
names the sample it duplicates.
"""
from __future__ import annotations

from infuse.operators.common.base import Reject
from infuse.operators.mix.sample import Sample, prompt_key


def dedup(samples: list[Sample]) -> tuple[list[Sample], list[Reject]]:
    seen: dict[str, Sample] = {}
    kept, rejects = [], []
    for s in samples:
        key = prompt_key(s.messages) or " ".join(m["content"].strip() for m in s.messages if m["role"] == "user")
        first = seen.get(key)
        if first is None:
            seen[key] = s
            kept.append(s)
            continue
        rejects.append(Reject(s.ref, "duplicate_prompt", f"same prompt as {first.sample_id} ({first.source})",
                              {"source": s.source, "sample_id": s.sample_id, "kept": first.sample_id,
                               "kept_source": first.source, "kept_ref": first.ref}))
    return kept, rejects
