"""Tooling of the source checkout (sample data), kept out of the runtime package `orchestration`."""
