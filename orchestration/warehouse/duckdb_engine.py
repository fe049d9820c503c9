"""The warehouse interface on a DuckDB file (the embedded default)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

from orchestration.warehouse.base import Frame, Params, Warehouse, as_arrow, split_relation
from orchestration.warehouse.duckdb_limits import apply_limits

_PYFORMAT = re.compile(r"%\((\w+)\)s")
_counter = itertools.count()


def duckdb_sql(sql: str, params: Params) -> str:
    """`%(name)s` -> `$name` and `%%` -> `%` (only when parameters are given, as in DB-API)."""
    if not params:
        return sql
    return _PYFORMAT.sub(lambda m: "$" + m.group(1), sql).replace("%%", "%")


class DuckDBWarehouse(Warehouse):
    engine = "duckdb"

    def __init__(self, path: Path, read_only: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.con = duckdb.connect(str(path), read_only=read_only)
        self.con.execute("set TimeZone = 'UTC'")
        apply_limits(self.con)  # CDP_DUCKDB_MEMORY_LIMIT, _THREADS, _TEMP_DIRECTORY
        self._in_transaction = False

    def _run(self, sql: str, params: Params) -> duckdb.DuckDBPyConnection:
        return self.con.execute(duckdb_sql(sql, params), dict(params) if params else None)

    def query(self, sql: str, params: Params = None) -> pd.DataFrame:
        return self._run(sql, params).df()

    def batches(self, sql: str, params: Params = None,
                rows: int = 100_000) -> Iterator[pd.DataFrame]:
        reader = self._run(sql, params).to_arrow_reader(rows)
        for batch in reader:
            yield batch.to_pandas()

    def rows(self, sql: str, params: Params = None) -> list[tuple]:
        return self._run(sql, params).fetchall()

    def scalar(self, sql: str, params: Params = None):
        rows = self._run(sql, params).fetchall()  # fetchone would leave the result unfinished
        return rows[0][0] if rows else None

    def exists(self, relation: str) -> bool:
        schema, table = split_relation(relation)
        return bool(self.con.execute(
            "select count(*) from information_schema.tables where table_schema = ? "
            "and table_name = ?", [schema, table]).fetchall()[0][0])

    def columns(self, relation: str) -> list[str]:
        schema, table = split_relation(relation)
        return [row[0] for row in self.con.execute(
            "select column_name from information_schema.columns where table_schema = ? "
            "and table_name = ? order by ordinal_position", [schema, table]).fetchall()]

    def execute(self, sql: str, params: Params = None) -> None:
        self._run(sql, params)

    def ensure_schema(self, schema: str) -> None:
        self.con.execute(f"create schema if not exists {schema}")

    @contextmanager
    def _registered(self, frame: Frame) -> Iterator[str]:
        name = f"_cdp_frame_{next(_counter)}"
        # DuckDB refuses to register while an earlier statement's result is unfetched
        self.con.execute("select 1").fetchall()
        self.con.register(name, as_arrow(frame))
        try:
            yield name
        finally:
            self.con.unregister(name)

    def replace_table(self, relation: str, frame: Frame) -> int:
        schema, _ = split_relation(relation)
        with self._registered(frame) as name, self.transaction():
            self.ensure_schema(schema)
            self.con.execute(f"create or replace table {relation} as select * from {name}")
        return as_arrow(frame).num_rows

    def replace_table_as(self, relation: str, sql: str, params: Params = None) -> int:
        schema, _ = split_relation(relation)
        with self.transaction():
            self.ensure_schema(schema)
            self._run(f"create or replace table {relation} as {sql}", params)
        return self.con.execute(f"select count(*) from {relation}").fetchall()[0][0]

    def append(self, relation: str, frame: Frame) -> int:
        schema, _ = split_relation(relation)
        with self._registered(frame) as name, self.transaction():
            self.ensure_schema(schema)
            self.con.execute(f"create table if not exists {relation} as "
                             f"select * from {name} limit 0")
            self.con.execute(f"insert into {relation} by name select * from {name}")
        return as_arrow(frame).num_rows

    def delete_where(self, relation: str, condition: str, params: Params = None) -> int:
        rows = self._run(f"delete from {relation} where {condition}", params).fetchall()
        return int(rows[0][0]) if rows else 0

    def delete_keys(self, relation: str, keys: Frame) -> int:
        columns = self.key_columns(keys)
        match = " and ".join(f"t.{c} = k.{c}" for c in columns)
        with self._registered(keys) as name:
            rows = self.con.execute(
                f"delete from {relation} t where exists (select 1 from {name} k where {match})"
            ).fetchall()
        return int(rows[0][0]) if rows else 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Begin/commit/rollback; a block inside an open one joins it (DuckDB does not nest)."""
        if self._in_transaction:
            yield
            return
        self.con.execute("begin")
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self.con.execute("rollback")
            raise
        else:
            self.con.execute("commit")
        finally:
            self._in_transaction = False

    def close(self) -> None:
        self.con.close()
