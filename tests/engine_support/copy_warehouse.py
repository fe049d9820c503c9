"""Copy the tables of a DuckDB warehouse file into another target through the warehouse interface."""

from __future__ import annotations

from pathlib import Path

import duckdb

from orchestration.warehouse import Warehouse


def copy_tables(source: Path, target: Warehouse) -> list[str]:
    """Every table and view of the DuckDB file `source` written to `target` as a table of the
    same `schema.name` (replace_table); returns the relations copied, sorted."""
    con = duckdb.connect(str(source), read_only=True)
    try:
        con.execute("set TimeZone = 'UTC'")
        relations = [f"{schema}.{name}" for schema, name in con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_catalog = current_database() order by 1, 2").fetchall()]
        for relation in relations:
            target.replace_table(relation, con.sql(f"select * from {relation}").to_arrow_table())
    finally:
        con.close()
    return relations
