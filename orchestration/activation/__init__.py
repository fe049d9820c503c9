"""Activation (reverse ETL): sync warehouse relations to tools, sending only what changed."""
