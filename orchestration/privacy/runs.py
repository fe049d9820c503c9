"""One run of the privacy requests: late data purged, new requests executed, removals confirmed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from orchestration.activation.state import forget_erased_payloads
from orchestration.privacy.audit import TargetResult, ensure_privacy_tables, now, salt, write_log
from orchestration.privacy.destinations import refresh_destination_removals
from orchestration.privacy.executor import RequestOutcome, execute_batch
from orchestration.privacy.requests import new_requests, rehash_redelivered_requests
from orchestration.privacy.sources import identified_sources, request_table
from orchestration.privacy.suppression import (
    LATE_DATA, forget_erased_phone_spellings, purge_suppressed,
)


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


def execute_privacy_requests(con: duckdb.DuckDBPyConnection,
                             log: Callable[[str], None] = lambda message: None,
                             project_file: Path | None = None) -> PrivacyRunReport:
    """Purge late data of erased people, then execute every request not executed before."""
    ensure_privacy_tables(con)
    sources = identified_sources(project_file)
    late = purge_suppressed(con, sources)
    if late:
        log(f"late data of erased people removed: {sum(t.rows_affected for t in late)} rows")
    outcomes = execute_batch(con, new_requests(con), sources, log)
    for outcome in outcomes:
        log(f"request {outcome.request_id} ({outcome.action}): {outcome.status}")
    rehashed = rehash_redelivered_requests(con)
    if rehashed:  # logged so the compaction that follows removes the plain values' bytes
        write_log(con, LATE_DATA, now(), [TargetResult(
            request_table(), "hash_identifier", int(rehashed))])
    forget_erased_payloads(con, salt())  # the sync state keeps keys only for them
    finished = refresh_destination_removals(con)
    forget_erased_phone_spellings(con)
    con.execute("select 1").fetchall()  # leave no unfetched result on the caller's connection
    return PrivacyRunReport(outcomes, late, finished)
