"""The warehouse interface on PostgreSQL (psycopg2; bulk writes by COPY of a CSV)."""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import psycopg2
import pyarrow as pa

from orchestration.warehouse.base import (
    Frame,
    Params,
    Warehouse,
    WarehouseError,
    as_arrow,
    split_relation,
)

_counter = itertools.count()


@dataclass(frozen=True)
class PostgresSettings:
    """The connection the dbt profile's `postgres` output uses (profiles/profiles.yml)."""

    host: str
    port: int
    user: str
    password: str
    dbname: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "PostgresSettings":
        env = os.environ if environ is None else environ
        return cls(host=env.get("CDP_PG_HOST", "localhost"),
                   port=int(env.get("CDP_PG_PORT", "5432")),
                   user=env.get("CDP_PG_USER", "postgres"),
                   password=env.get("CDP_PG_PASSWORD", ""),
                   dbname=env.get("CDP_PG_DATABASE", "cdp"))


def pg_type(field: pa.Field) -> str:
    """The PostgreSQL column type for an Arrow column."""
    t = field.type
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "bigint" if t.bit_width > 32 else "integer"
    if pa.types.is_floating(t):
        return "double precision"
    if pa.types.is_decimal(t):
        return f"numeric({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_null(t):
        return "text"
    return "text"


class PostgresWarehouse(Warehouse):
    engine = "postgres"
    type_names = {**Warehouse.type_names, "string": "text"}

    def __init__(self, settings: PostgresSettings | None = None) -> None:
        self.settings = settings or PostgresSettings.from_env()
        s = self.settings
        try:
            self.conn = psycopg2.connect(host=s.host, port=s.port, user=s.user,
                                         password=s.password, dbname=s.dbname)
        except psycopg2.OperationalError as exc:
            raise WarehouseError(f"postgres: cannot connect to {s.dbname} on {s.host}:{s.port} "
                                 f"as {s.user}: {exc}".strip()) from exc
        self.conn.autocommit = True
        self._in_transaction = False
        self.execute("set time zone 'UTC'")

    # -- reading -------------------------------------------------------------------------------
    def query(self, sql: str, params: Params = None) -> pd.DataFrame:
        with self.conn.cursor() as cur:
            cur.execute(sql, dict(params) if params else None)
            if cur.description is None:
                return pd.DataFrame()
            names = [d.name for d in cur.description]
            return pd.DataFrame(cur.fetchall(), columns=names)

    def batches(self, sql: str, params: Params = None,
                rows: int = 100_000) -> Iterator[pd.DataFrame]:
        with self.conn.cursor() as cur:
            cur.execute(sql, dict(params) if params else None)
            names = [d.name for d in cur.description]
            while True:
                chunk = cur.fetchmany(rows)
                if not chunk:
                    break
                yield pd.DataFrame(chunk, columns=names)

    def rows(self, sql: str, params: Params = None) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(sql, dict(params) if params else None)
            return cur.fetchall() if cur.description is not None else []

    # -- catalog -------------------------------------------------------------------------------
    def exists(self, relation: str) -> bool:
        schema, table = split_relation(relation)
        return bool(self.rows("select count(*) from information_schema.tables "
                              "where table_schema = %(s)s and table_name = %(t)s",
                              {"s": schema, "t": table})[0][0])

    def columns(self, relation: str) -> list[str]:
        schema, table = split_relation(relation)
        return [r[0] for r in self.rows(
            "select column_name from information_schema.columns where table_schema = %(s)s "
            "and table_name = %(t)s order by ordinal_position", {"s": schema, "t": table})]

    # -- writing -------------------------------------------------------------------------------
    def execute(self, sql: str, params: Params = None) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql, dict(params) if params else None)

    def ensure_schema(self, schema: str) -> None:
        self.execute(f'create schema if not exists "{schema}"')

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._in_transaction:
            yield
            return
        self.execute("begin")
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self.execute("rollback")
            raise
        else:
            self.execute("commit")
        finally:
            self._in_transaction = False

    def _create_from_frame(self, relation: str, table: pa.Table, temporary: bool = False) -> None:
        columns = ", ".join(f'"{f.name}" {pg_type(f)}' for f in table.schema)
        kind = "temporary table" if temporary else "table"
        self.execute(f"create {kind} {relation} ({columns})")
        self._copy_in(relation, table)

    def _copy_in(self, relation: str, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        with tempfile.TemporaryDirectory(prefix="cdp_pg_copy_") as tmp:
            path = Path(tmp) / "rows.csv"
            local = duckdb.connect()
            try:
                local.execute("set TimeZone = 'UTC'")
                local.register("frame", table)
                local.execute(f"copy (select * from frame) to '{path}' (format csv, header false)")
            finally:
                local.close()
            columns = ", ".join(f'"{name}"' for name in table.column_names)
            with self.conn.cursor() as cur, path.open("r", encoding="utf-8") as handle:
                cur.copy_expert(f"copy {relation} ({columns}) from stdin with (format csv)", handle)

    def _swap_in(self, relation: str, staged: str) -> None:
        """Replace `relation` by the staged table inside the current transaction. Same column names:
        truncate and refill (views on the table, such as dbt's staging views, stay valid);
        otherwise drop it (and what depends on it: dbt re-creates its views) and rename."""
        schema, table = split_relation(relation)
        staged_columns = self.columns(staged)
        if self.exists(relation) and self.columns(relation) == staged_columns:
            names = ", ".join(f'"{c}"' for c in staged_columns)
            self.execute(f"truncate {relation}")
            self.execute(f"insert into {relation} ({names}) select {names} from {staged}")
            self.execute(f"drop table {staged}")
        else:
            self.execute(f"drop table if exists {relation} cascade")
            self.execute(f'alter table {staged} rename to "{table}"')

    def _staged_name(self, relation: str) -> str:
        schema, table = split_relation(relation)
        return f"{schema}._cdp_new_{table[:40]}_{os.getpid()}_{next(_counter)}"

    def replace_table(self, relation: str, frame: Frame) -> int:
        schema, _ = split_relation(relation)
        table = as_arrow(frame)
        staged = self._staged_name(relation)
        with self.transaction():
            self.ensure_schema(schema)
            self._create_from_frame(staged, table)
            self._swap_in(relation, staged)
        return table.num_rows

    def replace_table_as(self, relation: str, sql: str, params: Params = None) -> int:
        schema, _ = split_relation(relation)
        staged = self._staged_name(relation)
        with self.transaction():
            self.ensure_schema(schema)
            self.execute(f"create table {staged} as {sql}", params)
            count = self.rows(f"select count(*) from {staged}")[0][0]
            self._swap_in(relation, staged)
        return int(count)

    def append(self, relation: str, frame: Frame) -> int:
        schema, _ = split_relation(relation)
        table = as_arrow(frame)
        with self.transaction():
            self.ensure_schema(schema)
            if not self.exists(relation):
                self._create_from_frame(relation, table)
            else:
                self._copy_in(relation, table)
        return table.num_rows

    def delete_where(self, relation: str, condition: str, params: Params = None) -> int:
        with self.conn.cursor() as cur:
            cur.execute(f"delete from {relation} where {condition}", dict(params) if params else None)
            return int(cur.rowcount)

    def delete_keys(self, relation: str, keys: Frame) -> int:
        table = as_arrow(keys)
        columns = self.key_columns(table)
        temp = f"_cdp_keys_{next(_counter)}"
        match = " and ".join(f't."{c}" = k."{c}"' for c in columns)
        with self.transaction():
            fields = ", ".join(f'"{f.name}" {pg_type(f)}' for f in table.schema)
            self.execute(f"create temporary table {temp} ({fields}) on commit drop")
            self._copy_in(temp, table)
            with self.conn.cursor() as cur:
                cur.execute(f"delete from {relation} t using {temp} k where {match}")
                deleted = cur.rowcount
        return int(deleted)

    def close(self) -> None:
        self.conn.close()
