"""Destination interface: batches in, per-row acknowledgements out; plus the factory by type."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from orchestration.activation.config import SyncConfig

Operation = Literal["upsert", "insert", "update", "delete", "add", "remove"]
REMOVALS: frozenset[str] = frozenset({"delete", "remove"})


@dataclass(frozen=True)
class Row:
    key: str
    fields: dict[str, Any]
    previous: dict[str, Any] | None = None  # last acknowledged payload (changes and removals)
    content_hash: str = ""  # md5 of the payload sent (of the previous payload for removals)


@dataclass(frozen=True)
class Batch:
    sync: str
    operation: Operation
    rows: list[Row]
    idempotency_key: str


@dataclass
class BatchResult:
    """What the destination said: rows not listed in `rejected` were acknowledged."""

    rejected: dict[str, str] = field(default_factory=dict)  # row key -> reason
    warnings: dict[str, str] = field(default_factory=dict)  # accepted, but something was dropped


class TransientError(Exception):
    """Throttled, server error, timeout, connection refused: retry the same batch later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BatchRejected(Exception):
    """The destination refused the batch as a whole: split it to find the offending rows."""


class DestinationError(Exception):
    """Misconfiguration or refusal that retrying cannot fix (bad credentials, missing endpoint)."""


@dataclass(frozen=True)
class FieldType:
    name: str
    duckdb_type: str


class Destination(Protocol):
    def open(self, fields: list[FieldType]) -> None: ...

    def write(self, batch: Batch) -> BatchResult: ...

    def close(self) -> None: ...


def build_destination(sync: "SyncConfig") -> Destination:
    """The destination object for a sync's `destination:` block."""
    kind = sync.destination.type
    if kind == "postgres":
        from orchestration.activation.destinations.postgres import PostgresTable

        return PostgresTable(sync)
    if kind == "http":
        from orchestration.activation.destinations.http import HttpWebhook

        return HttpWebhook(sync)
    if kind == "files":
        from orchestration.activation.destinations.files import FileFolder

        return FileFolder(sync)
    if kind == "ad_audience":
        from orchestration.activation.destinations.ad_audience import AdAudienceFiles

        return AdAudienceFiles(sync)
    if kind == "hubspot":
        from orchestration.activation.destinations.hubspot import HubspotContacts

        return HubspotContacts(sync)
    raise ValueError(f"unknown destination type {kind!r}")
