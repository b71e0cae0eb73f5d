"""mix: the domain QA plus general datasets -> one SFT set, split train/eval, exported for other tools.

Modules, one concern each: `config` (the recipe section), `formats` (alpaca /
sharegpt / messages rows -> messages), `load` (JSON, JSONL, Parquet files),
`identity` ({{name}}/{{author}}), `dedup` (normalised prompts across sources),
`split` (9:1 per source, by chunk), `ratio` (domain_ratio, weights,
up/down-sampling), `core` (the order of work), `export` (LLaMA-Factory,
ms-swift, OpenAI files), `report` (table and chart), `run` (the step's work:
qa rows in, rows, exports and report out). The shipped general sets are in
`data/`.

Reject reasons: malformed_json, malformed_row, missing_field, empty_content,
bad_turns, unsupported_role, unknown_format, unfilled_template (a row), and
unreadable_file, empty_file (a whole source); duplicate_prompt (detail: kept);
over_ratio (not taken for the ratio).
"""
from infuse.operators.mix.config import DOMAIN, GeneralSource, IdentityValues, MixConfig
from infuse.operators.mix.core import MixResult, mix
from infuse.operators.mix.export import write_exports
from infuse.operators.mix.load import MixInputError, file_sha256, source_path

__all__ = ["DOMAIN", "GeneralSource", "IdentityValues", "MixConfig", "MixResult", "mix",
           "write_exports", "MixInputError", "file_sha256", "source_path"]
