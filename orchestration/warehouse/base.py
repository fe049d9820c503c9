"""The warehouse interface every Python asset uses: one class, an implementation per dbt engine.

SQL passed to these methods is the engine's SQL; parameters are named in DB-API `pyformat`
(`%(name)s`), with a literal percent written `%%` whenever parameters are given. Relations are
`schema.table` strings, the form `orchestration.catalog` returns.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import pandas as pd
import pyarrow as pa

Params = Mapping[str, Any] | None
Frame = pd.DataFrame | pa.Table

_RELATION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")


class WarehouseError(RuntimeError):
    """A warehouse operation failed; the message names the engine, the relation and the step."""


def split_relation(relation: str) -> tuple[str, str]:
    """`schema.table` -> (schema, table); anything else is refused before it reaches SQL."""
    if not _RELATION.match(relation):
        raise WarehouseError(f"not a schema.table relation name: {relation!r}")
    schema, table = relation.split(".")
    return schema, table


def as_arrow(frame: Frame) -> pa.Table:
    if isinstance(frame, pa.Table):
        return frame
    return pa.Table.from_pandas(frame, preserve_index=False)


class Warehouse(ABC):
    """One open session on the target engine. Use through `WarehouseResource.open()`."""

    engine: ClassVar[str]
    # Column type names for `sql_type` (create table, cast): the same five kinds on every engine.
    type_names: ClassVar[Mapping[str, str]] = {
        "string": "varchar", "bigint": "bigint", "double": "double precision",
        "boolean": "boolean", "timestamp": "timestamp", "date": "date",
    }

    def sql_type(self, kind: str) -> str:
        """The engine's name for a column kind: string, bigint, double, boolean, timestamp, date
        (`cast(x as {wh.sql_type('string')})` is `varchar` on DuckDB, `text` on PostgreSQL and
        `string` on Spark)."""
        try:
            return self.type_names[kind]
        except KeyError:
            raise WarehouseError(f"unknown column kind {kind!r}: one of {sorted(self.type_names)}")

    def sha256_hex_sql(self, expr: str) -> str:
        """SQL of the lowercase hex SHA-256 of the text `expr` (Python's
        `hashlib.sha256(text.encode()).hexdigest()`)."""
        if self.engine == "postgres":
            return f"encode(sha256(convert_to({expr}, 'UTF8')), 'hex')"
        if self.engine == "spark":
            return f"sha2({expr}, 256)"
        return f"sha256({expr})"

    # -- reading -------------------------------------------------------------------------------
    @abstractmethod
    def query(self, sql: str, params: Params = None) -> pd.DataFrame:
        """All rows of a query as a DataFrame (column names as the engine returns them)."""

    def batches(self, sql: str, params: Params = None,
                rows: int = 100_000) -> Iterator[pd.DataFrame]:
        """The rows of a query in DataFrames of at most `rows` rows (one when it is small)."""
        frame = self.query(sql, params)
        for start in range(0, max(len(frame), 1), rows):
            yield frame.iloc[start:start + rows].reset_index(drop=True)

    def rows(self, sql: str, params: Params = None) -> list[tuple]:
        return [tuple(row) for row in self.query(sql, params).itertuples(index=False)]

    def scalar(self, sql: str, params: Params = None) -> Any:
        frame = self.query(sql, params)
        if frame.empty:
            return None
        value = frame.iat[0, 0]
        return None if pd.isna(value) else (value.item() if hasattr(value, "item") else value)

    # -- catalog -------------------------------------------------------------------------------
    @abstractmethod
    def exists(self, relation: str) -> bool:
        """Whether the table or view exists."""

    @abstractmethod
    def columns(self, relation: str) -> list[str]:
        """Column names of a relation in order ([] when it does not exist)."""

    # -- writing -------------------------------------------------------------------------------
    @abstractmethod
    def execute(self, sql: str, params: Params = None) -> None:
        """Run one statement."""

    @abstractmethod
    def ensure_schema(self, schema: str) -> None:
        ...

    @abstractmethod
    def replace_table(self, relation: str, frame: Frame) -> int:
        """Make `relation` hold exactly these rows, atomically: readers see the old table or the
        new one, never a half-written one; a failure leaves the old table. Returns the row count."""

    @abstractmethod
    def replace_table_as(self, relation: str, sql: str, params: Params = None) -> int:
        """Like `replace_table`, from a query the engine runs (the query may read `relation`)."""

    @abstractmethod
    def append(self, relation: str, frame: Frame) -> int:
        """Add rows by column name; creates the table from the frame's schema when missing."""

    def delete_where(self, relation: str, condition: str, params: Params = None) -> int:
        """Delete the rows for which the SQL `condition` is true (NULL counts as false). Returns
        the number of rows deleted. This default rewrites the table without them
        (`replace_table_as`), for engines without row-level DML (Spark's parquet tables); DuckDB
        and PostgreSQL delete in place, which writes only what changes."""
        before = int(self.scalar(f"select count(*) from {relation}"))
        kept = self.replace_table_as(
            relation, f"select * from {relation} where not coalesce({condition}, false)", params)
        return before - int(kept)

    @abstractmethod
    def delete_keys(self, relation: str, keys: Frame) -> int:
        """Delete the rows whose values in the columns of `keys` equal one row of `keys`
        (NULL matches nothing). Returns the number of rows deleted."""

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Statements inside commit together or not at all, where the engine has transactions
        (DuckDB, PostgreSQL). Spark has none: there each table write is atomic on its own."""
        yield

    @abstractmethod
    def close(self) -> None:
        ...

    # -- helpers for implementations ----------------------------------------------------------
    @staticmethod
    def key_columns(keys: Frame) -> Sequence[str]:
        names = list(as_arrow(keys).column_names)
        if not names:
            raise WarehouseError("delete_keys needs at least one key column")
        return names
