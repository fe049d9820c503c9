"""What a load did, per source and for the whole landing folder; the error that carries it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from orchestration.ingestion.errors import LandingError
from orchestration.ingestion.schema import load_rejects_table

if TYPE_CHECKING:
    from orchestration.phones import PhoneReport


@dataclass
class SourceReport:
    """What one load did to one source."""

    source: str
    files_loaded: list[str] = field(default_factory=list)
    files_skipped: list[str] = field(default_factory=list)
    files_empty: list[str] = field(default_factory=list)
    rows_loaded: int = 0
    rows_rejected: int = 0
    rows_replaced: int = 0
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    def summary(self) -> str:
        if self.error is not None:
            return f"{self.source}: FAILED, nothing changed ({self.error})"
        parts = [
            f"{len(self.files_loaded)} file(s) loaded",
            f"{self.rows_loaded:,} rows",
            f"{self.rows_rejected:,} rejected",
        ]
        if self.rows_replaced:
            parts.append(f"{self.rows_replaced:,} rows of changed files replaced")
        if self.files_skipped:
            parts.append(f"{len(self.files_skipped)} unchanged file(s) skipped")
        if self.files_empty:
            parts.append(f"{len(self.files_empty)} empty file(s) skipped")
        return f"{self.source}: " + ", ".join(parts)


@dataclass
class LoadReport:
    """What one load of the landing folder did, per source."""

    landing_dir: Path
    sources: dict[str, SourceReport] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    phones: PhoneReport | None = None  # numbers parsed for staging, invalid ones counted
    late_rows_purged: int = 0  # rows of erased people found by their normalised identifiers

    @property
    def rows_loaded(self) -> int:
        return sum(s.rows_loaded for s in self.sources.values())

    @property
    def rows_rejected(self) -> int:
        return sum(s.rows_rejected for s in self.sources.values())

    @property
    def files_loaded(self) -> int:
        return sum(len(s.files_loaded) for s in self.sources.values())

    @property
    def files_skipped(self) -> int:
        return sum(len(s.files_skipped) for s in self.sources.values())

    def summary(self) -> str:
        lines = [
            f"Landing folder {self.landing_dir}: {self.files_loaded} file(s) loaded, "
            f"{self.files_skipped} unchanged skipped, {self.rows_loaded:,} rows loaded, "
            f"{self.rows_rejected:,} rejected"
            + (f" (see {load_rejects_table()})" if self.rows_rejected else "")
        ]
        lines += [
            f"  {report.summary()}"
            for report in self.sources.values()
            if report.files_loaded or report.files_skipped or report.files_empty or report.error
        ]
        if self.phones is not None:
            lines.append(f"  {self.phones.summary()}")
        if self.late_rows_purged:
            lines.append(f"  {self.late_rows_purged:,} late row(s) of erased people purged")
        lines += [f"  warning: {warning}" for warning in self.warnings]
        return "\n".join(lines)


class LandingLoadError(LandingError):
    """One or more sources failed to load; each was rolled back, the others were committed."""

    def __init__(self, errors: Sequence[LandingError], report: LoadReport) -> None:
        lines = "\n".join(f"  - {error}" for error in errors)
        super().__init__(
            f"{len(errors)} landing source(s) failed to load and were left as they were:\n{lines}"
        )
        self.errors = list(errors)
        self.report = report
