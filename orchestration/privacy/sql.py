"""Portable SQL pieces of the privacy package: the session, names, value lists, hashes, tables."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb
import pandas as pd

from orchestration.warehouse.base import Warehouse
from orchestration.warehouse.duckdb_engine import DuckDBWarehouse

# What the privacy functions accept: a session of the interface, or (DuckDB callers and tests
# that hold one) an open DuckDB connection, used as a session that the caller keeps owning.
Target = Warehouse | duckdb.DuckDBPyConnection
_PLAIN = re.compile(r"^[a-z_][a-z0-9_]*$")


class _SharedDuckDB(DuckDBWarehouse):
    """The interface on a DuckDB connection the caller owns: never closed here, and a block
    that runs inside the caller's own transaction joins it instead of opening a second one."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.path = None
        self.con = con
        self._in_transaction = False

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._in_transaction or not self._caller_transaction_open():
            with super().transaction():
                yield
            return
        self._in_transaction = True  # the caller's transaction holds the block
        try:
            yield
        finally:
            self._in_transaction = False

    def _caller_transaction_open(self) -> bool:
        """Two statements in one transaction see one transaction id; in autocommit they do not
        (asking by `begin` would abort the caller's transaction when one is open)."""
        first = self.con.execute("select txid_current()").fetchone()
        second = self.con.execute("select txid_current()").fetchone()
        return first == second

    def close(self) -> None:
        pass


def warehouse_of(target: Target) -> Warehouse:
    if isinstance(target, Warehouse):
        return target
    return _SharedDuckDB(target)


def ident(wh: Warehouse, name: str) -> str:
    """A column name as SQL: plain when it is a plain lowercase name, else quoted for the engine."""
    if _PLAIN.match(name):
        return name
    if wh.engine == "spark":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def text(wh: Warehouse, expr: str) -> str:
    return f"cast({expr} as {wh.sql_type('string')})"


# A value written into the SQL as a literal: no quote, backslash, percent or control character
# (anything else goes as a parameter). DuckDB runs a parameterised scan of a view several times
# slower than the same scan with literals, and these lists are what every table is scanned for.
_LITERAL = re.compile(r"^[^'\\%\x00-\x1f]*$")


def _sql_values(values: Iterable[Any], prefix: str) -> tuple[list[str], dict[str, Any]]:
    parts, params = [], {}
    for i, value in enumerate(values):
        if isinstance(value, str) and _LITERAL.match(value):
            parts.append(f"'{value}'")
        else:
            params[f"{prefix}{i}"] = value
            parts.append(f"%({prefix}{i})s")
    return parts, params


def placeholders(values: Iterable[Any], prefix: str) -> tuple[str, dict[str, Any]]:
    """The SQL list of `values` (`'a', %(p1)s, ...`) and the parameters it needs; never empty
    (NULL matches nothing)."""
    parts, params = _sql_values(values, prefix)
    return (", ".join(parts) or "null"), params


def value_set(values: Iterable[Any], prefix: str) -> tuple[str, dict[str, Any]]:
    """`(select value from (values ('a'), ...) as vs(value))` and its parameters: the form of
    `x in <set>` that every engine runs as a semi-join (faster than a long IN list on DuckDB)."""
    parts, params = _sql_values(values, prefix)
    if not parts:
        return "(null)", params
    rows = ", ".join(f"({part})" for part in parts)
    return f"(select value from (values {rows}) as vs(value))", params


_relations = itertools.count()


@contextmanager
def value_relation(wh: Warehouse, values: Iterable[Any],
                   prefix: str = "v") -> Iterator[tuple[str, dict[str, Any]]]:
    """`value_set` of `values` held in a temporary relation for the block: yields the
    `(select value from <relation>)` that `x in ...` takes, and no parameters. For a set that
    many statements test (every table of a batch is scanned for the same values): written once,
    the list is parsed once; inline, each scan re-parsed all of it (a 1 MB statement for 1,500
    values in 20 columns: 1.0 s to plan, 0.3 s to run, on DuckDB)."""
    rows, params = value_set(values, prefix)
    if rows == "(null)":
        yield rows, params
        return
    name = f"_cdp_privacy_values_{next(_relations)}"
    kind = "view" if wh.engine == "spark" else "table"
    wh.execute(f"create temporary {kind} {name} as {rows[1:-1]}", params)
    try:
        yield f"(select value from {name})", {}
    except BaseException:
        try:  # an aborted transaction refuses every statement: the rollback drops it
            wh.execute(f"drop {kind} if exists {name}")
        except Exception:
            pass
        raise
    else:
        wh.execute(f"drop {kind} if exists {name}")


def hash_sql(wh: Warehouse, expr: str) -> str:
    """SQL of the salted identifier hash (hex SHA-256, as `identifier_hash` in Python)."""
    return wh.sha256_hex_sql(expr)


def records(wh: Warehouse, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The rows of a query as dicts, NULLs as None (for exports and small state tables)."""
    frame = wh.query(sql, params)
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_dict("records")


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def list_relations(wh: Warehouse, skipped_schemas: Sequence[str]) -> list[tuple[str, str, bool]]:
    """(schema, name, is a base table) of every table and view outside `skipped_schemas`: the
    one catalog listing that differs per engine (Spark has no information_schema)."""
    skipped = set(skipped_schemas)
    if wh.engine == "spark":
        found = []
        for (schema,) in wh.rows("show schemas"):
            if schema in skipped:
                continue
            views = {row[1] for row in wh.rows(f"show views in {schema}")}
            found += [(schema, row[1], row[1] not in views)
                      for row in wh.rows(f"show tables in {schema}") if not row[2]]
        return sorted(found)
    catalog_filter = "and table_catalog = current_database() " if wh.engine == "duckdb" else ""
    return sorted(
        (schema, table, kind == "BASE TABLE") for schema, table, kind in wh.rows(
            "select table_schema, table_name, table_type from information_schema.tables "
            f"where table_type in ('BASE TABLE', 'VIEW') {catalog_filter}")
        if schema not in skipped and not schema.startswith("pg_") and not table.startswith(
            "_cdp_new_"))


_TEXT_TYPES = ("varchar", "text", "character varying", "string")


def text_columns(wh: Warehouse, skipped_schemas: Sequence[str],
                 unreadable: list[tuple[str, str]] | None = None
                 ) -> list[tuple[str, str, bool, list[str]]]:
    """(schema, name, is a base table, its text columns in order) of every table and view
    outside `skipped_schemas` that has text columns: where identifiers can be (one catalog
    query on DuckDB and PostgreSQL, `describe` per relation on Spark). A relation Spark cannot
    describe (a view over a dropped table) raises, or goes to `unreadable` with its error."""
    relations = list_relations(wh, skipped_schemas)
    if wh.engine == "spark":
        found = []
        for schema, table, base in relations:
            columns = []
            try:
                described = wh.rows(f"describe table {schema}.{table}")
            except Exception as error:
                if unreadable is None:
                    raise
                unreadable.append((f"{schema}.{table}", _first_line(error)))
                continue
            for name, data_type, *_ in described:
                if not name or str(name).startswith("#"):
                    break
                if str(data_type).lower().startswith(_TEXT_TYPES):
                    columns.append(str(name))
            if columns:
                found.append((schema, table, base, columns))
        return found
    catalog_filter = "and table_catalog = current_database() " if wh.engine == "duckdb" else ""
    by_relation: dict[tuple[str, str], list[str]] = {}
    for schema, table, column, data_type in wh.rows(
            "select table_schema, table_name, column_name, data_type "
            f"from information_schema.columns where 1 = 1 {catalog_filter}"
            "order by table_schema, table_name, ordinal_position"):
        if str(data_type).lower() in _TEXT_TYPES:
            by_relation.setdefault((schema, table), []).append(column)
    return [(schema, table, base, by_relation[(schema, table)])
            for schema, table, base in relations if (schema, table) in by_relation]


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]


def unreadable_relations(wh: Warehouse, relations: Sequence[str]) -> list[tuple[str, str]]:
    """(relation, error) of the relations a query cannot read, probed one by one with a query
    that returns no row: a view whose base table is gone. Run outside a transaction: on DuckDB
    and PostgreSQL a failed read aborts the transaction it runs in."""
    broken = []
    for relation in relations:
        try:
            wh.rows(f"select * from {relation} where 1 = 0")
        except Exception as error:
            broken.append((relation, _first_line(error)))
    return broken
