"""What goes wrong in a load: a landing folder, one file, or sources that failed (and were rolled back)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestration.ingestion.reports import LoadReport


class LandingError(Exception):
    """Something in the landing folder cannot be loaded."""


class LandingFileError(LandingError):
    """One landing file breaks the contract (missing required column, unreadable header, ...)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class LandingLoadError(LandingError):
    """One or more sources failed to load; each was rolled back, the others were committed."""

    def __init__(self, errors: Sequence[LandingError], report: LoadReport) -> None:
        lines = "\n".join(f"  - {error}" for error in errors)
        super().__init__(
            f"{len(errors)} landing source(s) failed to load and were left as they were:\n{lines}"
        )
        self.errors = list(errors)
        self.report = report
