"""The privacy schema: request records, the request log and the suppression list, salted hashes."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb

SCHEMA = "privacy"
REQUESTS = f"{SCHEMA}.privacy_requests_processed"
LOG = f"{SCHEMA}.privacy_request_log"
SUPPRESSION = f"{SCHEMA}.suppression_list"
DEFAULT_SALT = "open-cdp-privacy"
# A processed request's identifier in the raw privacy_requests table: this prefix and the hash.
HASH_PREFIX = "sha256:"
# Log actions that remove or overwrite personal data: each leaves the old bytes in the DuckDB
# file's free blocks until the warehouse is compacted (orchestration/compaction.py).
ERASING_ACTIONS = ("delete", "null_pii", "hash_identifier")
COMPACTION_TARGET = "warehouse_file"
PRIVACY_STATUSES = ("received", "running", "finished", "partial", "failed")


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


def relation_exists(con: duckdb.DuckDBPyConnection, relation: str) -> bool:
    """Whether the table or view `schema.name` exists in the connected database."""
    schema, name = relation.split(".", 1)
    return con.execute(
        "select count(*) from information_schema.tables where table_schema = ? "
        "and table_name = ? and table_catalog = current_database()", [schema, name],
    ).fetchone()[0] > 0


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Commit the block's changes, or roll them all back and re-raise."""
    con.execute("begin transaction")
    try:
        yield
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def ensure_privacy_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"create schema if not exists {SCHEMA}")
    con.execute(f"""
        create table if not exists {REQUESTS} (
            request_id varchar primary key,
            request_type varchar,
            action varchar,
            identifier_type varchar,
            identifier_hash varchar,
            received_at timestamp,
            status varchar,
            customers_in_cluster integer,
            identifiers_in_cluster integer,
            processed_at timestamp,
            detail varchar
        )""")
    con.execute(f"""
        create table if not exists {LOG} (
            request_id varchar,
            target varchar,
            action varchar,
            status varchar,
            rows_affected bigint,
            started_at timestamp,
            completed_at timestamp,
            detail varchar
        )""")
    con.execute(f"""
        create table if not exists {SUPPRESSION} (
            identifier_hash varchar,
            identifier_type varchar,
            suppression_action varchar,
            request_id varchar,
            added_at timestamp
        )""")


@dataclass
class TargetResult:
    """What one step did to one target (a table, a destination, the export) for one request."""

    target: str
    action: str
    rows_affected: int
    status: str = "finished"
    detail: str = ""


def write_logs(con: duckdb.DuckDBPyConnection, started: dt.datetime,
               targets_by_request: Mapping[str, Sequence[TargetResult]]) -> None:
    """The request log rows of many requests in one insert (completed_at once finished)."""
    rows = [(request_id, t) for request_id, targets in targets_by_request.items()
            for t in targets]
    if not rows:
        return
    completed = now()
    columns = list(zip(*[(r, t.target, t.action, t.status, t.rows_affected, started,
                          completed if t.status == "finished" else None, t.detail)
                         for r, t in rows]))
    con.execute(
        f"insert into {LOG} select unnest(?::varchar[]), unnest(?::varchar[]), "
        "unnest(?::varchar[]), unnest(?::varchar[]), unnest(?::bigint[]), "
        "unnest(?::timestamp[]), unnest(?::timestamp[]), unnest(?::varchar[])",
        [list(c) for c in columns])


def write_log(con: duckdb.DuckDBPyConnection, request_id: str, started: dt.datetime,
              targets: Sequence[TargetResult]) -> None:
    """The request log rows of one request."""
    write_logs(con, started, {request_id: targets})


def last_erasure_at(con: duckdb.DuckDBPyConnection) -> dt.datetime | None:
    """When personal data was last deleted or overwritten in the warehouse (UTC), if ever."""
    if not relation_exists(con, LOG):
        return None
    return con.execute(
        f"select max(coalesce(completed_at, started_at)) from {LOG} "
        f"where list_contains(?, action) and target <> ?",
        [list(ERASING_ACTIONS), COMPACTION_TARGET]).fetchone()[0]


def compaction_due(con: duckdb.DuckDBPyConnection) -> bool:
    """Data was erased after the warehouse file was last compacted (or it never was)."""
    erased = last_erasure_at(con)
    if erased is None:
        return False
    compacted = con.execute(f"select max(completed_at) from {LOG} where target = ?",
                            [COMPACTION_TARGET]).fetchone()[0]
    return compacted is None or compacted < erased
