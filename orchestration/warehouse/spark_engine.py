"""The warehouse interface on Spark, through a Spark Thrift server (PyHive; bulk writes by parquet).

Spark's parquet tables have no transactions and no row-level DML, so every write is a table write:
frames are written to parquet in a staging dir the server reads (CDP_SPARK_STAGING_DIR, default
`<CDP_SPARK_WAREHOUSE>/_staging`; on a cluster it must be storage the server sees, such as a shared
mount), loaded into a staging table, then swapped in. "Atomic" on Spark means: the new rows are
complete in the staging table before the table is touched, and the swap is one statement (`insert
overwrite` when the columns are unchanged, so views on the table stay valid; otherwise drop and
rename, two metastore steps). A failure before the swap leaves the old table as it was.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from orchestration.warehouse.base import (
    Frame,
    Params,
    Warehouse,
    WarehouseError,
    as_arrow,
    split_relation,
)
from orchestration.warehouse.spark_server import SparkServerSettings, ensure_running

_counter = itertools.count()


def spark_type(field: pa.Field) -> str:
    """The Spark SQL column type for an Arrow column (timestamps are instants shown in UTC);
    "nested" for lists, structs and maps, which parquet carries to Spark as they are."""
    t = field.type
    if pa.types.is_dictionary(t):
        return spark_type(pa.field(field.name, t.value_type))
    if pa.types.is_nested(t):
        return "nested"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "int" if t.bit_width <= 32 and pa.types.is_signed_integer(t) else "bigint"
    if pa.types.is_floating(t):
        return "double"
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_date(t):
        return "date"
    return "string"


def spark_arrow(table: pa.Table) -> pa.Table:
    """The frame with each column in an Arrow type Spark reads from parquet as `spark_type` says:
    timestamps as UTC instants in microseconds (naive ones are taken as UTC), no null/unsigned/
    dictionary/large types, nested types as they are, anything else as strings."""
    fields, columns = [], []
    for field, column in zip(table.schema, table.columns):
        kind = spark_type(field)
        target: pa.DataType
        if kind == "timestamp":
            tz = field.type.tz
            target = pa.timestamp("us", tz="UTC")
            if tz is None:
                column = column.cast(pa.timestamp("us")).cast(target)
        elif kind == "date":
            target = pa.date32()
        elif kind in ("int", "bigint"):
            target = pa.int32() if kind == "int" else pa.int64()
        elif kind == "double":
            target = pa.float64()
        elif kind in ("boolean", "nested") or kind.startswith("decimal"):
            target = field.type
        else:
            target = pa.string()
        fields.append(pa.field(field.name, target))
        columns.append(column.cast(target))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _cast(field: pa.Field) -> str:
    """The select item that gives a staged parquet column its Spark type."""
    kind = spark_type(field)
    if kind == "nested":
        return _quote(field.name)
    return f"cast({_quote(field.name)} as {kind}) as {_quote(field.name)}"


class SparkWarehouse(Warehouse):
    engine = "spark"
    type_names = {"string": "string", "bigint": "bigint", "double": "double",
                  "boolean": "boolean", "timestamp": "timestamp", "date": "date"}

    def __init__(self, settings: SparkServerSettings | None = None,
                 staging_dir: Path | None = None) -> None:
        from pyhive import hive

        self.settings = ensure_running(settings or SparkServerSettings.from_env())
        configured = os.environ.get("CDP_SPARK_STAGING_DIR")
        self.staging_dir = staging_dir or (Path(configured) if configured
                                           else self.settings.warehouse / "_staging")
        s = self.settings
        try:
            self.conn = hive.connect(host=s.connect_host, port=s.port, username=s.user)
        except Exception as exc:  # noqa: BLE001 (thrift raises several kinds)
            raise WarehouseError(f"spark: cannot connect to the Thrift server at "
                                 f"{s.connect_host}:{s.port}: {exc}") from exc
        self.execute("set spark.sql.session.timeZone=UTC")

    # -- reading -------------------------------------------------------------------------------
    def _run(self, sql: str, params: Params = None) -> Any:
        cursor = self.conn.cursor()
        try:
            cursor.execute(sql, _pyhive_params(params))
        except Exception as exc:
            cursor.close()
            raise WarehouseError(f"spark: {_message(exc)}\nstatement: {sql[:500]}") from exc
        return cursor

    @staticmethod
    def _typed(cursor: Any, chunk: Sequence[tuple]) -> list[tuple]:
        """Rows with dates as `datetime.date` (the Thrift protocol sends them as strings)."""
        dates = [i for i, d in enumerate(cursor.description) if d[1] == "DATE_TYPE"]
        if not dates:
            return [tuple(row) for row in chunk]
        typed = []
        for row in chunk:
            values = list(row)
            for i in dates:
                if isinstance(values[i], str):
                    values[i] = dt.date.fromisoformat(values[i])
            typed.append(tuple(values))
        return typed

    @classmethod
    def _frame(cls, cursor: Any, chunk: Sequence[tuple]) -> pd.DataFrame:
        names = [d[0] for d in cursor.description]
        return pd.DataFrame(cls._typed(cursor, chunk), columns=names)

    def rows(self, sql: str, params: Params = None) -> list[tuple]:
        cursor = self._run(sql, params)
        try:
            return self._typed(cursor, cursor.fetchall()) if cursor.description else []
        finally:
            cursor.close()

    def query(self, sql: str, params: Params = None) -> pd.DataFrame:
        cursor = self._run(sql, params)
        try:
            if cursor.description is None:
                return pd.DataFrame()
            return self._frame(cursor, cursor.fetchall())
        finally:
            cursor.close()

    def batches(self, sql: str, params: Params = None,
                rows: int = 100_000) -> Iterator[pd.DataFrame]:
        cursor = self._run(sql, params)
        try:
            if cursor.description is None:
                return
            while True:
                chunk = cursor.fetchmany(rows)
                if not chunk:
                    break
                yield self._frame(cursor, chunk)
        finally:
            cursor.close()

    # -- catalog -------------------------------------------------------------------------------
    def _tables(self, schema: str) -> list[str]:
        """Names (lower case) of the tables and views of a schema; [] when it does not exist."""
        try:
            listed = self.rows(f"show tables in {_quote(schema)}")
        except WarehouseError as exc:
            if "SCHEMA_NOT_FOUND" in str(exc) or "NoSuchDatabase" in str(exc):
                return []
            raise
        return [str(row[1]).lower() for row in listed if not row[2]]

    def exists(self, relation: str) -> bool:
        schema, table = split_relation(relation)
        return table.lower() in self._tables(schema)

    def _described(self, relation: str, known: bool = False) -> list[tuple[str, str]]:
        """(column, type) pairs in order; [] when the relation does not exist (`known`: it does)."""
        if not known and not self.exists(relation):
            return []
        described = []
        for name, data_type, *_ in self.rows(f"describe table {relation}"):
            if not name or str(name).startswith("#"):
                break
            described.append((str(name), str(data_type)))
        return described

    def columns(self, relation: str) -> list[str]:
        return [name for name, _ in self._described(relation)]

    # -- writing -------------------------------------------------------------------------------
    def execute(self, sql: str, params: Params = None) -> None:
        self._run(sql, params).close()

    def ensure_schema(self, schema: str) -> None:
        self.execute(f"create database if not exists {_quote(schema)}")

    def _staged_name(self, relation: str) -> str:
        schema, table = split_relation(relation)
        return f"{schema}._cdp_new_{table[:40]}_{os.getpid()}_{next(_counter)}"

    def _write_parquet(self, table: pa.Table) -> Path:
        """The frame as one parquet file in a fresh staging dir; returns the dir."""
        directory = self.staging_dir / f"frame_{os.getpid()}_{uuid.uuid4().hex}"
        directory.mkdir(parents=True)
        pq.write_table(spark_arrow(table), directory / "part-0.parquet")
        return directory

    def _select_frame(self, table: pa.Table, directory: Path) -> str:
        """A query over the staged parquet with each column cast to its Spark type."""
        casts = ", ".join(_cast(f) for f in table.schema)
        return f"select {casts} from parquet.`{directory}`"

    def _stage_frame(self, relation: str, table: pa.Table) -> str:
        """A new table in the relation's schema holding the frame's rows; returns its name."""
        staged = self._staged_name(relation)
        directory = self._write_parquet(table)
        try:
            self.execute(f"create table {staged} using parquet as "
                         f"{self._select_frame(table, directory)}")
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return staged

    def _swap_in(self, relation: str, staged: str) -> None:
        """Replace `relation` by the complete staged table. Same columns and types: `insert
        overwrite` (views on the table stay valid); otherwise drop it and rename the staged one."""
        new = self._described(staged, known=True)
        if self._described(relation) == new:
            names = ", ".join(_quote(name) for name, _ in new)
            try:
                self.execute(f"insert overwrite table {relation} select {names} from {staged}")
            finally:
                self.execute(f"drop table if exists {staged}")
            return
        try:
            self.execute(f"drop table if exists {relation}")
        except WarehouseError:
            self.execute(f"drop table if exists {staged}")
            raise
        try:
            self.execute(f"alter table {staged} rename to {relation}")
        except WarehouseError as exc:
            raise WarehouseError(f"spark: {relation} was dropped but renaming {staged} (which "
                                 f"holds the new rows) failed: {exc}") from exc

    def replace_table(self, relation: str, frame: Frame) -> int:
        schema, _ = split_relation(relation)
        table = as_arrow(frame)
        self.ensure_schema(schema)
        staged = self._stage_frame(relation, table)
        self._swap_in(relation, staged)
        return table.num_rows

    def replace_table_as(self, relation: str, sql: str, params: Params = None) -> int:
        schema, _ = split_relation(relation)
        self.ensure_schema(schema)
        staged = self._staged_name(relation)
        self.execute(f"create table {staged} using parquet as {sql}", params)
        count = int(self.scalar(f"select count(*) from {staged}"))
        self._swap_in(relation, staged)
        return count

    def append(self, relation: str, frame: Frame) -> int:
        table = as_arrow(frame)
        if not self.exists(relation):
            return self.replace_table(relation, table)
        target = self.columns(relation)
        extra = [name for name in table.column_names if name not in target]
        if extra:
            raise WarehouseError(f"spark: append to {relation}: columns {extra} are not in the "
                                 f"table (it has {target})")
        if table.num_rows == 0:
            return 0
        directory = self._write_parquet(table)
        try:
            present = set(table.column_names)
            by_name = {f.name: f for f in table.schema}
            select = ", ".join(_cast(by_name[c]) if c in present else f"null as {_quote(c)}"
                               for c in target)
            self.execute(f"insert into {relation} select {select} from parquet.`{directory}`")
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return table.num_rows

    def delete_keys(self, relation: str, keys: Frame) -> int:
        """Rewrite the table without the matching rows (through a staging table, then swap)."""
        table = as_arrow(keys)
        columns = self.key_columns(table)
        if table.num_rows == 0:
            return 0
        match = " and ".join(f"t.{_quote(c)} = k.{_quote(c)}" for c in columns)
        directory = self._write_parquet(table)
        try:
            source = f"({self._select_frame(table, directory)}) k"
            deleted = int(self.scalar(f"select count(*) from {relation} t left semi join "
                                      f"{source} on {match}"))
            if deleted == 0:
                return 0
            staged = self._staged_name(relation)
            self.execute(f"create table {staged} using parquet as select t.* from {relation} t "
                         f"left anti join {source} on {match}")
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        self._swap_in(relation, staged)
        return deleted

    def close(self) -> None:
        self.conn.close()


def _pyhive_value(value: Any) -> Any:
    """A parameter in a form PyHive escapes right: numpy scalars as Python values, aware
    datetimes as naive UTC (the session time zone), decimals as their exact text."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if isinstance(value, Decimal):
        return str(value)
    return value


def _pyhive_params(params: Params) -> dict[str, Any] | None:
    return {k: _pyhive_value(v) for k, v in params.items()} if params else None


def _message(exc: BaseException) -> str:
    """The server's error text out of a PyHive/thrift exception (its status holds the message)."""
    for arg in getattr(exc, "args", ()):
        status = getattr(arg, "status", None)
        if status is not None and getattr(status, "errorMessage", None):
            return str(status.errorMessage).splitlines()[0]
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
