"""parse: a folder of files -> `documents`, parsed incrementally per file content hash.

Each file's parse is cached under cache-parse/<code version>/<hash of its bytes
and its path> (the extension picks the parser, the name can be the title), so
adding one file to a folder of N parses only that file, and a removed file
simply drops out of the output. The work is operators/parsers/run.py's.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from infuse.operators.parsers.document import DOCUMENT_SCHEMA
from infuse.operators.parsers.ingest import check_input, scan
from infuse.operators.parsers.run import StoreCache, fingerprint, folder_fates, max_bytes, parse_files
from infuse.operators.common.file_checks import shown
from infuse.tasks.framework.checks import AllRejected, nothing_kept
from infuse.tasks.framework.step import Step, StepContext, StepOptions, StepOutput, StepReport, table

CACHE_STEP = "cache-parse"


class ParseOptions(StepOptions):
    max_file_mb: float = Field(50.0, gt=0, description="files over this size are rejected as too_large")


class Parse(Step):
    name = "parse"
    stage = 10
    description = "read every file of the input folder into `documents` (one row per document or record)"
    outputs = {"documents": table(DOCUMENT_SCHEMA)}
    Options = ParseOptions

    def config(self, recipe: Any) -> dict[str, Any]:
        return {**super().config(recipe), "input_dir": str(Path(recipe.input).resolve())}

    def key_config(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """The folder's path is not part of the key: its files' names and contents are (fingerprint)."""
        return {k: v for k, v in super().key_config(cfg).items() if k != "input_dir"}

    def fingerprint(self, cfg: dict[str, Any]) -> dict[str, Any]:
        check_input(cfg["input_dir"])
        return fingerprint(Path(cfg["input_dir"]), cfg["max_file_mb"])

    def check(self, cfg: dict[str, Any]) -> list[str]:
        """A folder whose every file parse would reject before reading it is said here, before any work."""
        folder = Path(cfg["input_dir"])
        if not folder.is_dir():
            return []  # the CLI says so, naming the recipe key `input`
        fates = folder_fates(folder, cfg["max_file_mb"], shown)
        return [nothing_kept("input files", fates)] if fates else []

    def run(self, ctx: StepContext) -> StepOutput:
        folder, max_file_mb = Path(ctx.cfg["input_dir"]), ctx.cfg["max_file_mb"]
        check_input(folder)
        # no hashing here: each file is hashed once, as it is read for parsing
        entries, scan_rejects = scan(folder, max_bytes(max_file_mb), hash_files=False)
        cache = StoreCache(ctx.store, CACHE_STEP, self.code_version())
        with ctx.writer("documents", row_group_size=2_000) as w, ctx.progress(len(entries), "parse", "files") as bar:
            res = parse_files(entries, scan_rejects, cache, w.write, bar.update)
            docs = w.commit()
        files_in = len(res.files)
        if files_in and not res.kept_files:  # nothing for any later step: fail, saying why, not a run of 0 rows
            raise AllRejected(nothing_kept("input files", res.fates(folder, max_file_mb, shown)))
        return StepOutput({"documents": docs}, res.rejects, StepReport(
            rows_in=files_in, kept=res.kept_files, unit_in="files", unit_out="files",
            markdown=f"{docs.rows} documents; parsed {res.parsed} file(s), {res.reused} from the per-file cache",
            stats={"files_in": files_in, "files_parsed": res.parsed, "files_from_cache": res.reused,
                   "documents": docs.rows, "documents_by_format": res.formats, "input_files": res.input_files}))

