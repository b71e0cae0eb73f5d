"""The SFT dataset rows that pass from mix to the training, preference and evaluation steps.

One row is one chat sample. Domain rows keep their provenance (document,
chunk, span) so evaluation can say which documents were learned; general
rows name the dataset they came from.
"""
from __future__ import annotations

import pyarrow as pa

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])

SFT_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("messages", pa.list_(MESSAGE)),  # system? user assistant [user assistant ...]
        ("source", pa.string()),  # "domain", or the general dataset's name in the recipe
        ("kind", pa.string()),  # domain | general | identity
        ("doc_id", pa.string()),  # "" for general rows
        ("chunk_id", pa.string()),
        ("span_start", pa.int64()),  # [start, end) of the supporting text in documents.text; null when none
        ("span_end", pa.int64()),
        ("strategy", pa.string()),  # the synthesis strategy (domain) or the source format (general)
        ("lang", pa.string()),
        ("split", pa.string()),  # train | eval
        ("meta", pa.string()),  # JSON from synthesis: a fact's id, its short gold answer and aliases (facts)
    ]
)
