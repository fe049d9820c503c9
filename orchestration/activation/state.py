"""Sync state, run log and row errors in the warehouse schema `activation`."""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field

import duckdb

SCHEMA = "activation"
STATE = f"{SCHEMA}.sync_state"
RUNS = f"{SCHEMA}.activation_sync_runs"
ROW_ERRORS = f"{SCHEMA}.activation_sync_row_errors"
LOG = logging.getLogger(__name__)

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
    # What a removal of the row sends besides the key (SyncConfig.removal_fields), as JSON; the
    # payload itself never travels in a removal and is dropped when the person is erased.
    f"alter table {STATE} add column if not exists removal_fields varchar",
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


PRIVACY_LOG = "privacy.privacy_request_log"  # written by orchestration/privacy/


def _relation_exists(con: duckdb.DuckDBPyConnection, relation: str) -> bool:
    schema, name = relation.split(".")
    return bool(con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, name]).fetchone()[0])


def configured_syncs() -> set[str] | None:
    """Names of the syncs declared now (enabled or not); None when the config cannot be read."""
    from orchestration.activation.config import ConfigError, load_config

    try:
        return {sync.name for sync in load_config().syncs}
    except ConfigError:
        return None


def forget_erased_payloads(con: duckdb.DuckDBPyConnection, salt: str,
                           configured: set[str] | None = None) -> dict[str, int]:
    """Drop what the sync state holds about people with a pending destination removal.

    For every `destination_removal` still running in the privacy log (an erasure or suppression
    whose removal a sync has not sent yet), the stored payload of the person's rows is replaced
    by the removal fields (the key the destination needs, nothing else) and their row errors
    (whose reasons can quote a rejected value) are deleted. A sync no longer declared can never
    send the removal: its rows for the person are deleted, so the request does not stay
    `partial` for a sync that is gone (its destination must be cleaned by hand; logged).
    Returns rows changed per kind: payloads, errors, unconfigured."""
    counts = {"payloads": 0, "errors": 0, "unconfigured": 0}
    if not (_relation_exists(con, PRIVACY_LOG) and _relation_exists(con, STATE)):
        return counts
    columns = {name for (name,) in con.execute(
        "select column_name from information_schema.columns"
        " where table_schema = ? and table_name = ?", STATE.split(".")).fetchall()}
    kept = "coalesce(t.removal_fields, '{}')" if "removal_fields" in columns else "'{}'"
    pending = con.execute(
        f"select target, detail from {PRIVACY_LOG}"
        " where action = 'destination_removal' and status = 'running'").fetchall()
    if not pending:
        return counts
    configured = configured_syncs() if configured is None else configured
    con.execute("create or replace temp table _act_erased (sync_name varchar, key_hash varchar)")
    for target, detail in pending:
        con.execute("insert into _act_erased select ?, unnest(?::varchar[])",
                    [target.split(":", 1)[1], json.loads(detail or "[]")])
    erased = ("t.sync_name = e.sync_name and sha256(? || t.row_key) = e.key_hash")
    con.execute("begin transaction")
    try:
        if "payload" in columns:
            counts["payloads"] = con.execute(
                f"update {STATE} as t set payload = {kept} from _act_erased as e"
                f" where {erased} and t.payload <> {kept}", [salt]).fetchone()[0]
        if _relation_exists(con, ROW_ERRORS):
            counts["errors"] = con.execute(
                f"delete from {ROW_ERRORS} as t using _act_erased as e where {erased}",
                [salt]).fetchone()[0]
        if configured is not None:
            gone = con.execute(
                f"delete from {STATE} as t using _act_erased as e where {erased}"
                " and not list_contains(?::varchar[], e.sync_name) returning t.sync_name",
                [salt, sorted(configured)]).fetchall()
            counts["unconfigured"] = len(gone)
            for name in sorted({row[0] for row in gone}):
                LOG.warning("sync %s is no longer configured: its state for erased people was "
                            "dropped; clean its destination by hand", name)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return counts
