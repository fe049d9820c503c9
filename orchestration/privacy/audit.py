"""The privacy schema: request records, the request log, the suppression list, rectifications."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from orchestration.privacy.sql import Target, placeholders, warehouse_of
from orchestration.warehouse.base import Warehouse

SCHEMA = "privacy"
REQUESTS = f"{SCHEMA}.privacy_requests_processed"
LOG = f"{SCHEMA}.privacy_request_log"
SUPPRESSION = f"{SCHEMA}.suppression_list"
RECTIFICATIONS = f"{SCHEMA}.rectifications"
DEFAULT_SALT = "open-cdp-privacy"
# A processed request's identifier in the raw privacy_requests table: this prefix and the hash.
HASH_PREFIX = "sha256:"
# Log actions that remove or overwrite personal data: each leaves the old bytes in the DuckDB
# file's free blocks until the warehouse is compacted (orchestration/compaction.py).
ERASING_ACTIONS = ("delete", "null_pii", "hash_identifier")
COMPACTION_TARGET = "warehouse_file"
PRIVACY_STATUSES = ("received", "running", "finished", "partial", "failed")

_TS = pa.timestamp("us")
TABLES: dict[str, pa.Schema] = {
    REQUESTS: pa.schema([
        ("request_id", pa.string()), ("request_type", pa.string()), ("action", pa.string()),
        ("identifier_type", pa.string()), ("identifier_hash", pa.string()),
        ("received_at", _TS), ("status", pa.string()), ("customers_in_cluster", pa.int32()),
        ("identifiers_in_cluster", pa.int32()), ("processed_at", _TS), ("detail", pa.string())]),
    LOG: pa.schema([
        ("request_id", pa.string()), ("target", pa.string()), ("action", pa.string()),
        ("status", pa.string()), ("rows_affected", pa.int64()), ("started_at", _TS),
        ("completed_at", _TS), ("detail", pa.string())]),
    SUPPRESSION: pa.schema([
        ("identifier_hash", pa.string()), ("identifier_type", pa.string()),
        ("suppression_action", pa.string()), ("request_id", pa.string()), ("added_at", _TS)]),
    RECTIFICATIONS: pa.schema([
        ("request_id", pa.string()), ("customer_id", pa.string()), ("attribute", pa.string()),
        ("old_value", pa.string()), ("old_value_source", pa.string()),
        ("new_value", pa.string()), ("received_at", _TS), ("applied_at", _TS)]),
}


def salt() -> str:
    return os.environ.get("CDP_PRIVACY_SALT", DEFAULT_SALT)


def identifier_hash(value: str, salt_value: str | None = None) -> str:
    """Python twin of the dbt macro privacy_hash: sha256 hex of salt || normalised value."""
    return hashlib.sha256(((salt_value if salt_value is not None else salt()) + value)
                          .encode()).hexdigest()


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def relation_exists(target: Target, relation: str) -> bool:
    """Whether the table or view `schema.name` exists in the target."""
    return warehouse_of(target).exists(relation)


@contextmanager
def transaction(target: Target) -> Iterator[None]:
    """Commit the block's changes, or roll them all back and re-raise (where the engine has
    transactions; on Spark each table write is atomic on its own)."""
    with warehouse_of(target).transaction():
        yield


def ensure_privacy_tables(target: Target) -> None:
    wh = warehouse_of(target)
    wh.ensure_schema(SCHEMA)
    for relation, schema in TABLES.items():
        if not wh.exists(relation):
            wh.replace_table(relation, schema.empty_table())


def table_of(relation: str, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Rows of a privacy table as an Arrow table of its schema."""
    schema = TABLES[relation]
    return pa.Table.from_pylist([{n: _plain(row.get(n)) for n in schema.names} for row in rows],
                                schema=schema)


def _plain(value: Any) -> Any:
    """A value as Arrow takes it from Python (pandas' Timestamp, NaT and NaN made plain)."""
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.to_pydatetime()
    if isinstance(value, float) and pd.isna(value):
        return None
    return value


def rewrite_rows(wh: Warehouse, relation: str, key: str, changes: Mapping[str, Mapping[str, Any]]
                 ) -> int:
    """Change columns of the rows of a privacy table whose `key` is in `changes` ({key value:
    {column: value}}): the rows are read, deleted by key and appended back changed, in one
    transaction where the engine has them. Returns the rows rewritten."""
    if not changes:
        return 0
    names = TABLES[relation].names
    marks, params = placeholders(changes, "k")
    rows = [dict(zip(names, row)) for row in wh.rows(
        f"select {', '.join(names)} from {relation} where {key} in ({marks})", params)]
    for row in rows:
        row.update(changes[row[key]])
    with wh.transaction():
        wh.delete_keys(relation, pa.table({key: pa.array(list(changes), pa.string())}))
        wh.append(relation, table_of(relation, rows))
    return len(rows)


@dataclass
class TargetResult:
    """What one step did to one target (a table, a destination, the export) for one request."""

    target: str
    action: str
    rows_affected: int
    status: str = "finished"
    detail: str = ""


def write_logs(target: Target, started: dt.datetime,
               targets_by_request: Mapping[str, Sequence[TargetResult]]) -> None:
    """The request log rows of many requests in one append (completed_at once finished)."""
    completed = now()
    rows = [{"request_id": request_id, "target": t.target, "action": t.action,
             "status": t.status, "rows_affected": int(t.rows_affected), "started_at": started,
             "completed_at": completed if t.status == "finished" else None, "detail": t.detail}
            for request_id, targets in targets_by_request.items() for t in targets]
    if rows:
        warehouse_of(target).append(LOG, table_of(LOG, rows))


def write_log(target: Target, request_id: str, started: dt.datetime,
              targets: Sequence[TargetResult]) -> None:
    """The request log rows of one request."""
    write_logs(target, started, {request_id: targets})


def _timestamp(value: Any) -> dt.datetime | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).to_pydatetime()


def last_erasure_at(target: Target) -> dt.datetime | None:
    """When personal data was last deleted or overwritten in the warehouse (UTC), if ever."""
    wh = warehouse_of(target)
    if not wh.exists(LOG):
        return None
    marks, params = placeholders(ERASING_ACTIONS, "a")
    return _timestamp(wh.scalar(
        f"select max(coalesce(completed_at, started_at)) from {LOG} "
        f"where action in ({marks}) and target <> %(compaction)s",
        {**params, "compaction": COMPACTION_TARGET}))


def compaction_due(target: Target) -> bool:
    """Data was erased after the warehouse file was last compacted (or it never was)."""
    wh = warehouse_of(target)
    erased = last_erasure_at(wh)
    if erased is None:
        return False
    compacted = _timestamp(wh.scalar(f"select max(completed_at) from {LOG} where target = %(t)s",
                                     {"t": COMPACTION_TARGET}))
    return compacted is None or compacted < erased
