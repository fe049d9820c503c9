"""Sync state, run log and row errors in the target warehouse's schema `activation`."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from orchestration.warehouse.base import Warehouse

SCHEMA = "activation"
STATE = f"{SCHEMA}.sync_state"
RUNS = f"{SCHEMA}.activation_sync_runs"
ROW_ERRORS = f"{SCHEMA}.activation_sync_row_errors"
LOG = logging.getLogger(__name__)

_TS = pa.timestamp("us", tz="UTC")
# One row per (sync, row key) the destination acknowledged: content hash and payload sent, and
# what a removal of the row sends besides the key (SyncConfig.removal_fields) as JSON; the
# payload itself never travels in a removal and is dropped when the person is erased.
STATE_SCHEMA = pa.schema([("sync_name", pa.string()), ("row_key", pa.string()),
                          ("row_hash", pa.string()), ("payload", pa.string()),
                          ("synced_at", _TS), ("removal_fields", pa.string())])
RUNS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("sync_name", pa.string()), ("destination_type", pa.string()),
    ("mode", pa.string()), ("dry_run", pa.bool_()), ("started_at", _TS), ("finished_at", _TS),
    ("status", pa.string()), ("rows_added", pa.int64()), ("rows_changed", pa.int64()),
    ("rows_removed", pa.int64()), ("rows_sent", pa.int64()), ("rows_acknowledged", pa.int64()),
    ("rows_failed", pa.int64()), ("rows_invalid", pa.int64()), ("batches", pa.int64()),
    ("retries", pa.int64()), ("duration_seconds", pa.float64()), ("error", pa.string())])
ROW_ERRORS_SCHEMA = pa.schema([("run_id", pa.string()), ("sync_name", pa.string()),
                               ("row_key", pa.string()), ("error_kind", pa.string()),
                               ("reason", pa.string()), ("recorded_at", _TS)])
TABLES = {STATE: STATE_SCHEMA, RUNS: RUNS_SCHEMA, ROW_ERRORS: ROW_ERRORS_SCHEMA}


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


def as_warehouse(con: Warehouse | duckdb.DuckDBPyConnection) -> Warehouse:
    """The warehouse interface over `con`: a Warehouse as it is, or an open DuckDB connection
    (callers and tests that hold one) wrapped without taking ownership of it."""
    if isinstance(con, Warehouse):
        return con
    from orchestration.warehouse.duckdb_engine import DuckDBWarehouse

    wrapped = DuckDBWarehouse.__new__(DuckDBWarehouse)
    wrapped.path = None
    wrapped.con = con
    wrapped._in_transaction = False
    return wrapped


def clean(value: Any) -> Any:
    """A value read back from the warehouse as plain Python (NaN/NaT -> None, numpy -> Python)."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        return value.item()
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{name: clean(value) for name, value in zip(frame.columns, row)}
            for row in frame.itertuples(index=False, name=None)]


def table(schema: pa.Schema, rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist([{n: row.get(n) for n in schema.names} for row in rows],
                                schema=schema)


def ensure_schema(con: Warehouse | duckdb.DuckDBPyConnection) -> None:
    """Create the state tables that are missing; add `removal_fields` to a state table written
    before it existed (a rewrite through the interface, no ALTER)."""
    wh = as_warehouse(con)
    for relation, schema in TABLES.items():
        if not wh.exists(relation):
            wh.append(relation, schema.empty_table())
    if "removal_fields" not in wh.columns(STATE):
        wh.replace_table_as(STATE, f"select *, cast(null as {wh.sql_type('string')})"
                                   f" as removal_fields from {STATE}")


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _rewrite_runs(wh: Warehouse, rows: list[dict[str, Any]]) -> None:
    """Replace the run-log rows of these run ids by these rows (no UPDATE: delete and append)."""
    wh.delete_keys(RUNS, pd.DataFrame({"run_id": [row["run_id"] for row in rows]}))
    wh.append(RUNS, table(RUNS_SCHEMA, rows))


def start_run(con: Warehouse | duckdb.DuckDBPyConnection, run_id: str, sync: str,
              destination_type: str, mode: str, dry_run: bool) -> dict[str, Any]:
    """Log the run as `running`; an earlier run of the sync still `running` was killed.
    Returns the run's log row (finish_run completes it)."""
    wh = as_warehouse(con)
    started = {"run_id": run_id, "sync_name": sync, "destination_type": destination_type,
               "mode": mode, "dry_run": dry_run, "started_at": now(), "status": "running"}
    killed = records(wh.query(f"select * from {RUNS} where sync_name = %(sync)s"
                              " and status = 'running'", {"sync": sync}))
    with wh.transaction():
        if killed:
            for row in killed:
                row.update(status="interrupted", error="process ended before the run finished")
            _rewrite_runs(wh, killed)
        wh.append(RUNS, table(RUNS_SCHEMA, [started]))
    return started


def finish_run(con: Warehouse | duckdb.DuckDBPyConnection, run: dict[str, Any], status: str,
               counts: RunCounts, error: str | None) -> float:
    wh = as_warehouse(con)
    finished = now()
    duration = (finished - run["started_at"]).total_seconds()
    row = {**run, "finished_at": finished, "status": status, "rows_added": counts.added,
           "rows_changed": counts.changed, "rows_removed": counts.removed,
           "rows_sent": counts.sent, "rows_acknowledged": counts.acknowledged,
           "rows_failed": counts.failed, "rows_invalid": counts.invalid,
           "batches": counts.batches, "retries": counts.retries,
           "duration_seconds": duration, "error": error}
    with wh.transaction():
        _rewrite_runs(wh, [row])
    return duration


def _keep_newer(wh: Warehouse, relation: str, condition: str, cutoff: dt.datetime) -> None:
    """Drop the rows matching `condition` (on %(cutoff)s) by rewriting the table, when any do."""
    if wh.scalar(f"select count(*) from {relation} where {condition}", {"cutoff": cutoff}):
        wh.replace_table_as(relation, f"select * from {relation} where not ({condition})",
                            {"cutoff": cutoff})


def apply_retention(con: Warehouse | duckdb.DuckDBPyConnection, days: int) -> None:
    wh = as_warehouse(con)
    cutoff = now() - dt.timedelta(days=days)
    _keep_newer(wh, RUNS, "started_at < %(cutoff)s and status <> 'running'", cutoff)
    _keep_newer(wh, ROW_ERRORS, "recorded_at < %(cutoff)s", cutoff)


def reset_sync(con: Warehouse | duckdb.DuckDBPyConnection, sync: str) -> None:
    """Forget what was synced: the next run sends every row again (a full re-sync)."""
    as_warehouse(con).delete_keys(STATE, pd.DataFrame({"sync_name": [sync]}))


def last_run(con: Warehouse | duckdb.DuckDBPyConnection, sync: str) -> dict[str, object] | None:
    wh = as_warehouse(con)
    if not wh.exists(RUNS):
        return None
    found = records(wh.query(f"select * from {RUNS} where sync_name = %(sync)s and not dry_run"
                             " order by started_at desc limit 1", {"sync": sync}))
    return found[0] if found else None


PRIVACY_LOG = "privacy.privacy_request_log"  # written by orchestration/privacy/


def configured_syncs() -> set[str] | None:
    """Names of the syncs declared now (enabled or not); None when the config cannot be read."""
    from orchestration.activation.config import ConfigError, load_config

    try:
        return {sync.name for sync in load_config().syncs}
    except ConfigError:
        return None


def key_hash(salt: str, row_key: str) -> str:
    """How the privacy log names an erased person's row key: sha256 hex of salt || key."""
    return hashlib.sha256((salt + row_key).encode()).hexdigest()


_HEX = re.compile(r"[0-9a-f]{1,128}")


def _erased_rows(wh: Warehouse, relation: str, erased: dict[str, set[str]],
                 salt: str) -> list[dict[str, Any]]:
    """The rows of `relation` whose sync's erased key hashes include their row key's: the
    hashes are matched in the warehouse, so only those rows are read (not the whole state)."""
    syncs = sorted(erased)
    hashes = sorted(set().union(*erased.values()))
    if not syncs or not hashes:
        return []
    params: dict[str, Any] = {"salt": salt, **{f"s{i}": name for i, name in enumerate(syncs)}}
    in_syncs = ", ".join(f"%(s{i})s" for i in range(len(syncs)))
    # hex digests as literals (a long list of parameters scans several times slower on DuckDB)
    in_hashes = ", ".join(f"'{h}'" for h in hashes if _HEX.fullmatch(h)) or "null"
    key = wh.sha256_hex_sql(f"%(salt)s || cast(row_key as {wh.sql_type('string')})")
    rows = records(wh.query(f"select * from {relation} where sync_name in ({in_syncs}) "
                            f"and {key} in ({in_hashes})", params))
    return [row for row in rows if row["row_key"] is not None
            and key_hash(salt, row["row_key"]) in erased.get(row["sync_name"], set())]


def forget_erased_payloads(con: Warehouse | duckdb.DuckDBPyConnection, salt: str,
                           configured: set[str] | None = None) -> dict[str, int]:
    """Drop what the sync state holds about people with a pending destination removal.

    For every `destination_removal` still running in the privacy log (an erasure or suppression
    whose removal a sync has not sent yet), the stored payload of the person's rows is replaced
    by the removal fields (the key the destination needs, nothing else) and their row errors
    (whose reasons can quote a rejected value) are deleted. A sync no longer declared can never
    send the removal: its rows for the person are deleted, so the request does not stay
    `partial` for a sync that is gone (its destination must be cleaned by hand; logged).
    Returns rows changed per kind: payloads, errors, unconfigured."""
    wh = as_warehouse(con)
    counts = {"payloads": 0, "errors": 0, "unconfigured": 0}
    if not (wh.exists(PRIVACY_LOG) and wh.exists(STATE)):
        return counts
    pending = wh.rows(f"select target, detail from {PRIVACY_LOG}"
                      " where action = 'destination_removal' and status = 'running'")
    if not pending:
        return counts
    erased: dict[str, set[str]] = {}
    for target, detail in pending:
        erased.setdefault(target.split(":", 1)[1], set()).update(json.loads(detail or "[]"))
    configured = configured_syncs() if configured is None else configured
    matched = _erased_rows(wh, STATE, erased, salt)
    has_payload = "payload" in wh.columns(STATE)
    rewritten = []
    for row in matched:
        kept = row.get("removal_fields") or "{}"
        if has_payload and row["payload"] != kept:
            counts["payloads"] += 1
            row["payload"] = kept
        if configured is None or row["sync_name"] in configured:
            rewritten.append(row)
    gone = sorted({row["sync_name"] for row in matched} - {row["sync_name"] for row in rewritten})
    counts["unconfigured"] = len(matched) - len(rewritten)
    errors = _erased_rows(wh, ROW_ERRORS, erased, salt) if wh.exists(ROW_ERRORS) else []
    with wh.transaction():
        if matched:
            keys = pd.DataFrame({"sync_name": [r["sync_name"] for r in matched],
                                 "row_key": [r["row_key"] for r in matched]})
            wh.delete_keys(STATE, keys)
            if rewritten:
                wh.append(STATE, table(STATE_SCHEMA, rewritten) if has_payload
                          else pd.DataFrame(rewritten))
        if errors:
            counts["errors"] = wh.delete_keys(ROW_ERRORS, pd.DataFrame(
                {"sync_name": [r["sync_name"] for r in errors],
                 "row_key": [r["row_key"] for r in errors]}).drop_duplicates())
    for name in gone:
        LOG.warning("sync %s is no longer configured: its state for erased people was "
                    "dropped; clean its destination by hand", name)
    return counts
