"""Sync state, run log and row errors in the warehouse schema `activation`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import duckdb

SCHEMA = "activation"
STATE = f"{SCHEMA}.sync_state"
RUNS = f"{SCHEMA}.activation_sync_runs"
ROW_ERRORS = f"{SCHEMA}.activation_sync_row_errors"

DDL = [
    f"create schema if not exists {SCHEMA}",
    # One row per (sync, row key) the destination acknowledged: content hash and payload sent.
    f"""create table if not exists {STATE} (
        sync_name varchar not null,
        row_key varchar not null,
        row_hash varchar not null,
        payload varchar not null,
        synced_at timestamp with time zone not null
    )""",
    f"""create table if not exists {RUNS} (
        run_id varchar not null,
        sync_name varchar not null,
        destination_type varchar not null,
        mode varchar not null,
        dry_run boolean not null,
        started_at timestamp with time zone not null,
        finished_at timestamp with time zone,
        status varchar not null,
        rows_added bigint,
        rows_changed bigint,
        rows_removed bigint,
        rows_sent bigint,
        rows_acknowledged bigint,
        rows_failed bigint,
        rows_invalid bigint,
        batches bigint,
        retries bigint,
        duration_seconds double,
        error varchar
    )""",
    f"""create table if not exists {ROW_ERRORS} (
        run_id varchar not null,
        sync_name varchar not null,
        row_key varchar,
        error_kind varchar not null,
        reason varchar not null,
        recorded_at timestamp with time zone not null
    )""",
]


@dataclass
class RunCounts:
    added: int = 0
    changed: int = 0
    removed: int = 0
    sent: int = 0
    acknowledged: int = 0
    failed: int = 0
    invalid: int = 0
    batches: int = 0
    retries: int = 0
    warnings: int = 0
    failures_by_reason: dict[str, int] = field(default_factory=dict)


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    for statement in DDL:
        con.execute(statement)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def start_run(con: duckdb.DuckDBPyConnection, run_id: str, sync: str, destination_type: str,
              mode: str, dry_run: bool) -> dt.datetime:
    """Log the run as `running`; an earlier run of the sync still `running` was killed."""
    started = now()
    con.execute(
        f"update {RUNS} set status = 'interrupted', error = 'process ended before the run finished'"
        " where sync_name = ? and status = 'running'",
        [sync],
    )
    con.execute(
        f"insert into {RUNS} (run_id, sync_name, destination_type, mode, dry_run, started_at, status)"
        " values (?, ?, ?, ?, ?, ?, 'running')",
        [run_id, sync, destination_type, mode, dry_run, started],
    )
    return started


def finish_run(con: duckdb.DuckDBPyConnection, run_id: str, status: str, started: dt.datetime,
               counts: RunCounts, error: str | None) -> float:
    finished = now()
    duration = (finished - started).total_seconds()
    con.execute(
        f"""update {RUNS} set finished_at = ?, status = ?, rows_added = ?, rows_changed = ?,
            rows_removed = ?, rows_sent = ?, rows_acknowledged = ?, rows_failed = ?,
            rows_invalid = ?, batches = ?, retries = ?, duration_seconds = ?, error = ?
            where run_id = ?""",
        [finished, status, counts.added, counts.changed, counts.removed, counts.sent,
         counts.acknowledged, counts.failed, counts.invalid, counts.batches, counts.retries,
         duration, error, run_id],
    )
    return duration


def apply_retention(con: duckdb.DuckDBPyConnection, days: int) -> None:
    cutoff = now() - dt.timedelta(days=days)
    con.execute(f"delete from {RUNS} where started_at < ? and status <> 'running'", [cutoff])
    con.execute(f"delete from {ROW_ERRORS} where recorded_at < ?", [cutoff])


def reset_sync(con: duckdb.DuckDBPyConnection, sync: str) -> None:
    """Forget what was synced: the next run sends every row again (a full re-sync)."""
    con.execute(f"delete from {STATE} where sync_name = ?", [sync])


def last_run(con: duckdb.DuckDBPyConnection, sync: str) -> dict[str, object] | None:
    rel = con.execute(
        f"select * from {RUNS} where sync_name = ? and not dry_run"
        " order by started_at desc limit 1",
        [sync],
    )
    row = rel.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in rel.description], row))
