"""Synthesis: chunks and documents -> SFT samples (messages) with provenance.

One module per strategy or augmenter in `strategies/`, each registering itself
(strategy.py: the contract and the registry). `plan` makes work items,
`estimate` prices them, `run_items` (waves.py) executes a group of them against
an LLMBackend, `synthesize` (orchestrate.py) runs a whole step's items in
resumable shards, and `run_synthesis` (run.py) is the synthesize step's work in
one call.
"""
from infuse.operators.synthesize.config import LLMOptions, SynthConfig
from infuse.operators.synthesize.estimate import estimate, format_estimate
from infuse.operators.synthesize.orchestrate import ShardStore, SynthResult, synthesize
from infuse.operators.synthesize.plan import plan, plan_items
from infuse.operators.synthesize.rag import ChunkIndex, build_index
from infuse.operators.synthesize.run import Keep, Synthesis, describe_plan, run_synthesis
from infuse.operators.synthesize.schema import ITEM_STATUS_SCHEMA, QA_SCHEMA, ItemStatus, WorkItem
from infuse.operators.synthesize.waves import run_items

__all__ = ["SynthConfig", "LLMOptions", "ShardStore", "SynthResult", "plan_items", "synthesize", "plan", "estimate",
           "format_estimate", "run_items", "build_index", "ChunkIndex", "QA_SCHEMA", "ITEM_STATUS_SCHEMA",
           "ItemStatus", "WorkItem", "Keep", "Synthesis", "describe_plan", "run_synthesis"]
