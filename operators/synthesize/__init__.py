"""Synthesis: chunks and documents -> SFT samples (messages) with provenance.

One strategy per module (qa, rag, self_instruct, code_tasks, log_tasks,
dialogue, summary, atomic_facts, rewrite, raft, record_template,
section_template, continuation, identity) and two augmenters (paraphrase,
evol_instruct). `plan` makes work items, `estimate` prices them,
`run_items` executes a group of them against an LLMBackend, and `synthesize`
runs a whole step's items in resumable shards.
"""
from infuse.operators.synthesize.config import SynthConfig
from infuse.operators.synthesize.orchestrate import ShardStore, SynthResult, plan_items, synthesize
from infuse.operators.synthesize.plan import estimate, format_estimate, plan
from infuse.operators.synthesize.rag import ChunkIndex, build_index
from infuse.operators.synthesize.run import run_items
from infuse.operators.synthesize.schema import ITEM_STATUS_SCHEMA, QA_SCHEMA, ItemStatus, WorkItem

__all__ = ["SynthConfig", "ShardStore", "SynthResult", "plan_items", "synthesize", "plan", "estimate", "format_estimate", "run_items", "build_index", "ChunkIndex",
           "QA_SCHEMA", "ITEM_STATUS_SCHEMA", "ItemStatus", "WorkItem"]
