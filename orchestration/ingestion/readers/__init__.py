"""Readers that stage one landing file as typed rows with their line numbers: CSV and Parquet."""
