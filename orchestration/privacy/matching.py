"""Finding a batch's people in a table: one scan per table for every request, rows credited back.

Each table is scanned once for the values of all requests; the matching rows are then joined
back to the values to credit each request with the rows that hold one of *its* values (two
requests of one person are both credited with the same rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import duckdb

from orchestration.activation.state import STATE as SYNC_STATE
from orchestration.catalog import catalog
from orchestration.privacy.audit import quote, relation_exists
from orchestration.privacy.requests import Cluster
from orchestration.privacy.sources import IdentifiedSource, not_derived_schemas

# Tables outside those schemas that are not derived data: the activation state is what lets
# the next sync send the removal.
KEPT_TABLES = (tuple(SYNC_STATE.split(".", 1)),)


def match_rows(con: duckdb.DuckDBPyConnection, relation: str, columns: Sequence[str],
               values: str, row_key: str, all_columns: bool = False) -> int:
    """Rows of `relation` with a value of `values` in one of `columns`, in one scan.

    Leaves `_privacy_hits` (__privacy_row = `row_key`, the columns or every column) and
    `_privacy_matches` (request_id, __privacy_row): each hit row with every request one of
    whose values it holds. Returns the number of hit rows."""
    where = " or ".join(f"{quote(c)} in (select value from {values})" for c in columns)
    kept = "*" if all_columns else ", ".join(quote(c) for c in columns)
    con.execute(f"create or replace temp table _privacy_hits as select {row_key} as "
                f"__privacy_row, {kept} from {relation} where {where}")
    listed = ", ".join(f"cast({quote(c)} as varchar)" for c in columns)
    con.execute(f"""
        create or replace temp table _privacy_matches as
        select distinct v.request_id, h.__privacy_row
        from (select __privacy_row, unnest([{listed}]) as value from _privacy_hits) as h
        inner join {values} as v on v.value = h.value""")
    return con.execute("select count(*) from _privacy_hits").fetchone()[0]


def match_records(con: duckdb.DuckDBPyConnection, source: IdentifiedSource, values: str,
                  customers: str) -> int:
    """`_privacy_records` (request_id, record_id): staged records of `source` carrying a value
    of a request or owned by one of its customers. Returns the number of (request, record)."""
    con.execute("create or replace temp table _privacy_found "
                "(request_id varchar, record_id varchar)")
    if relation_exists(con, source.staging_relation):
        match_rows(con, source.staging_relation, source.identifier_columns, values,
                   f"cast({quote(source.staging_record_id)} as varchar)")
        con.execute("insert into _privacy_found select request_id, __privacy_row "
                    "from _privacy_matches")
    records = catalog().relation("customer_source_records")
    if relation_exists(con, records):
        con.execute(
            "insert into _privacy_found select c.request_id, s.source_record_id "
            f"from {records} as s "
            f"inner join {customers} as c on c.customer_id = s.customer_id where s.source = ?",
            [source.source])
    con.execute("create or replace temp table _privacy_records as "
                "select distinct * from _privacy_found where record_id is not null")
    return con.execute("select count(*) from _privacy_records").fetchone()[0]


def rows_by_request(con: duckdb.DuckDBPyConnection,
                    sql: str) -> dict[str, list[dict[str, Any]]]:
    """Run `sql` (first column: request id) and group the other columns by request."""
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description][1:]
    found: dict[str, list[dict[str, Any]]] = {}
    for row in cursor.fetchall():
        found.setdefault(row[0], []).append(dict(zip(names, row[1:])))
    return found


def _tables_with_text(con: duckdb.DuckDBPyConnection, skipped_schemas: Sequence[str],
                      base_tables_only: bool) -> list[tuple[str, str, list[str]]]:
    """(schema, table, varchar columns) of the tables (and views) outside `skipped_schemas`."""
    kind = "and t.table_type = 'BASE TABLE' " if base_tables_only else ""
    return con.execute(
        "select t.table_schema, t.table_name, list(c.column_name order by c.ordinal_position) "
        "from information_schema.tables t join information_schema.columns c "
        "on c.table_schema = t.table_schema and c.table_name = t.table_name "
        "and c.table_catalog = t.table_catalog "
        f"where t.table_catalog = current_database() {kind}"
        "and c.data_type = 'VARCHAR' and not list_contains(?, t.table_schema) "
        "group by all order by all", [list(skipped_schemas)]).fetchall()


def derived_tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, list[str]]]:
    """(schema, table, varchar columns) of every base table but raw, privacy and sync state."""
    return [(schema, table, columns)
            for schema, table, columns in _tables_with_text(con, not_derived_schemas(), True)
            if (schema, table) not in KEPT_TABLES]


def access_tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, list[str]]]:
    """(schema, table, varchar columns) of every table and view outside raw and privacy."""
    return _tables_with_text(con, not_derived_schemas(), False)


def load_values(con: duckdb.DuckDBPyConnection, name: str, request_id: str,
                values: Iterable[str]) -> str:
    """A temp table `name (request_id, value)` of `values` for one request."""
    con.execute(f"create or replace temp table {name} (request_id varchar, value varchar)")
    wanted = sorted({v for v in values if v})
    if wanted:
        con.execute(f"insert into {name} select ?, unnest(?::varchar[])", [request_id, wanted])
    return name


def cluster_record_ids(con: duckdb.DuckDBPyConnection, source: IdentifiedSource,
                       cluster: Cluster) -> list[str]:
    """Staged record ids of `source` that belong to the cluster (for audits and tests)."""
    values = load_values(con, "_privacy_audit_values", "cluster", cluster.values)
    customers = load_values(con, "_privacy_audit_customers", "cluster", cluster.customer_ids)
    con.execute(f"alter table {customers} rename value to customer_id")
    match_records(con, source, values, customers)
    return sorted(r[0] for r in con.execute("select record_id from _privacy_records").fetchall())
