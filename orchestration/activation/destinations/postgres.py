"""PostgreSQL table destination: COPY each batch into a temp table, then upsert/update/delete by key."""

from __future__ import annotations

import io
import json
import os
from typing import TYPE_CHECKING, Any

import psycopg2
import psycopg2.errors
from psycopg2 import sql

from orchestration.activation.destinations import (
    Batch,
    BatchRejected,
    BatchResult,
    DestinationError,
    FieldType,
    TransientError,
)

if TYPE_CHECKING:
    from orchestration.activation.config import PostgresDestination, SyncConfig

# DuckDB type (prefix) -> PostgreSQL column type for tables the destination creates.
PG_TYPES = [
    ("TIMESTAMP WITH TIME ZONE", "timestamptz"),
    ("TIMESTAMP", "timestamp"),
    ("DATE", "date"),
    ("BOOLEAN", "boolean"),
    ("TINYINT", "bigint"), ("SMALLINT", "bigint"), ("INTEGER", "bigint"), ("BIGINT", "bigint"),
    ("HUGEINT", "numeric"), ("UBIGINT", "numeric"), ("UINTEGER", "bigint"),
    ("DECIMAL", "numeric"), ("DOUBLE", "double precision"), ("FLOAT", "double precision"),
    ("VARCHAR", "text"), ("UUID", "uuid"),
]


def pg_type(duckdb_type: str) -> str:
    upper = duckdb_type.upper()
    for prefix, target in PG_TYPES:
        if upper.startswith(prefix) and not upper.endswith("[]"):
            return target
    return "jsonb"  # lists, structs, maps


def copy_text(value: Any) -> str:
    """One value in COPY text format."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, dict | list):
        value = json.dumps(value)
    text = str(value)
    return (text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


# Errors caused by the data of some row (rejected, bisected); others are the server's or ours.
ROW_ERRORS = (psycopg2.DataError, psycopg2.IntegrityError)


class PostgresTable:
    """Upsert by key (`insert ... on conflict do update`), update-only, insert-only, delete."""

    def __init__(self, sync: "SyncConfig") -> None:
        self.sync = sync
        self.settings: PostgresDestination = sync.destination  # type: ignore[assignment]
        self.key = sync.key_field
        self.columns: list[str] = []
        self.conn: Any = None

    def dsn(self) -> str:
        if self.settings.dsn:
            return self.settings.dsn
        value = os.environ.get(self.settings.dsn_env or "")
        if not value:
            raise DestinationError(f"sync {self.sync.name}: environment variable "
                                   f"{self.settings.dsn_env} (PostgreSQL DSN) is not set")
        return value

    @property
    def table(self) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.settings.schema_name),
                                       sql.Identifier(self.settings.table))

    def connect(self) -> None:
        try:
            self.conn = psycopg2.connect(self.dsn(),
                                         connect_timeout=self.settings.connect_timeout_seconds)
        except psycopg2.OperationalError as exc:
            raise TransientError(f"cannot connect to PostgreSQL: {exc}".strip()) from exc

    def open(self, fields: list[FieldType]) -> None:
        self.columns = [f.name for f in fields]
        self.connect()
        definitions = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(pg_type(f.duckdb_type)))
            for f in fields)
        with self.conn, self.conn.cursor() as cur:
            cur.execute(sql.SQL("create schema if not exists {}").format(
                sql.Identifier(self.settings.schema_name)))
            cur.execute(sql.SQL("create table if not exists {} ({}, primary key ({}))").format(
                self.table, definitions, sql.Identifier(self.key)))

    def statement(self, operation: str) -> sql.Composed:
        cols = sql.SQL(", ").join(map(sql.Identifier, self.columns))
        key = sql.Identifier(self.key)
        others = [c for c in self.columns if c != self.key]
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = excluded.{}").format(sql.Identifier(c), sql.Identifier(c))
            for c in others)
        if operation in ("delete", "remove"):
            return sql.SQL("delete from {t} as t using _cdp_batch as b where t.{k} = b.{k}").format(
                t=self.table, k=key)
        if operation == "update":
            sets = sql.SQL(", ").join(sql.SQL("{} = b.{}").format(sql.Identifier(c),
                                                                   sql.Identifier(c))
                                      for c in others)
            return sql.SQL("update {t} as t set {s} from _cdp_batch as b where t.{k} = b.{k}").format(
                t=self.table, s=sets, k=key)
        conflict = (sql.SQL("do nothing") if operation == "insert" or not others
                    else sql.SQL("do update set {}").format(assignments))
        return sql.SQL("insert into {t} ({c}) select {c} from _cdp_batch on conflict ({k}) {x}").format(
            t=self.table, c=cols, k=key, x=conflict)

    def write(self, batch: Batch) -> BatchResult:
        if self.conn is None or self.conn.closed:
            self.connect()
        buffer = io.StringIO()
        for row in batch.rows:
            buffer.write("\t".join(copy_text(row.fields.get(c)) for c in self.columns))
            buffer.write("\n")
        buffer.seek(0)
        cols = sql.SQL(", ").join(map(sql.Identifier, self.columns))
        try:
            with self.conn, self.conn.cursor() as cur:
                cur.execute(sql.SQL("create temp table _cdp_batch (like {}) on commit drop").format(
                    self.table))
                cur.copy_expert(sql.SQL("copy _cdp_batch ({}) from stdin").format(cols).as_string(
                    self.conn), buffer)
                cur.execute(self.statement(batch.operation))
        except ROW_ERRORS as exc:
            raise BatchRejected(f"PostgreSQL refused: {str(exc).strip().splitlines()[0]}") from exc
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
            self.close()
            raise TransientError(f"PostgreSQL connection failed: {str(exc).strip()}") from exc
        except psycopg2.ProgrammingError as exc:
            raise DestinationError(f"PostgreSQL: {str(exc).strip()}") from exc
        return BatchResult()

    def close(self) -> None:
        if self.conn is not None and not self.conn.closed:
            self.conn.close()
        self.conn = None
