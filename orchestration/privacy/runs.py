"""One run of the privacy requests: late data purged, new requests executed, removals confirmed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestration.activation.state import forget_erased_payloads
from orchestration.privacy.audit import TargetResult, ensure_privacy_tables, now, salt, write_log
from orchestration.privacy.destinations import refresh_destination_removals
from orchestration.privacy.executor import RequestOutcome, execute_batch
from orchestration.privacy.requests import new_requests, rehash_redelivered_requests
from orchestration.privacy.sources import identified_sources, request_table
from orchestration.privacy.suppression import (
    LATE_DATA, forget_erased_phone_spellings, purge_suppressed,
)
from orchestration.privacy.sql import Target, warehouse_of


@dataclass
class PrivacyRunReport:
    outcomes: list[RequestOutcome]
    late_data: list[TargetResult]
    destination_removals_finished: int

    def counts(self) -> dict[str, int]:
        by_status: dict[str, int] = {}
        for outcome in self.outcomes:
            by_status[outcome.status] = by_status.get(outcome.status, 0) + 1
        return by_status


def execute_privacy_requests(target: Target,
                             log: Callable[[str], None] = lambda message: None,
                             project_file: Path | None = None) -> PrivacyRunReport:
    """Purge late data of erased people, then execute every request not executed before."""
    wh = warehouse_of(target)
    ensure_privacy_tables(wh)
    sources = identified_sources(project_file)
    late = purge_suppressed(wh, sources)
    if late:
        log(f"late data of erased people removed: {sum(t.rows_affected for t in late)} rows")
    outcomes = execute_batch(wh, new_requests(wh), sources, log)
    for outcome in outcomes:
        log(f"request {outcome.request_id} ({outcome.action}): {outcome.status}")
    rehashed = rehash_redelivered_requests(wh)
    if rehashed:  # logged so the compaction that follows removes the plain values' bytes
        write_log(wh, LATE_DATA, now(), [TargetResult(
            request_table(), "hash_identifier", int(rehashed))])
    # the sync state keeps keys only for them
    forget_erased_payloads(wh, salt())
    finished = refresh_destination_removals(wh)
    forget_erased_phone_spellings(wh)
    return PrivacyRunReport(outcomes, late, finished)
