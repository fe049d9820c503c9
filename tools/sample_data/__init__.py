"""Deterministic, dirty sample landing files for every contract source, with ground truth.

`generate(customers, seed, out)` writes a landing folder; `python -m tools.sample_data --help`
does the same from the command line. docs/sample-data.md describes what is simulated.
"""

from tools.sample_data.generator import generate

__all__ = ["generate"]
