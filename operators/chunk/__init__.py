"""Chunking: documents into token-bounded pieces (chunker), at sentence boundaries (sentences)."""
