"""Audit scan: every table and view, every column, searched for given values."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import duckdb

from orchestration.privacy.audit import quote


def find_traces(con: duckdb.DuckDBPyConnection, values: Iterable[str],
                skip: Sequence[tuple[str, str]] = ()) -> dict[str, int]:
    """Rows of any table or view, in any column cast to text, holding one of `values`:
    `{"schema.table.column": rows}`. Case-insensitive; values with letters (emails, ids) match
    inside longer text (JSON payloads), all-digit values (phones) only whole. For auditing.
    One query per relation (a view is computed once, not once per column)."""
    wanted = sorted({v.strip().lower() for v in values if v and v.strip()})
    if not wanted:
        return {}
    literals = ", ".join("'" + v.replace("'", "''") + "'" for v in wanted)
    inside = [v for v in wanted if any(ch.isalpha() for ch in v)]
    relations: dict[tuple[str, str], list[str]] = {}
    for schema, table, column in con.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where table_catalog = current_database() "
            "and table_schema not in ('information_schema', 'pg_catalog') order by all"
    ).fetchall():
        if (schema, table) not in skip:
            relations.setdefault((schema, table), []).append(column)
    found: dict[str, int] = {}
    for (schema, table), columns in relations.items():
        counts = []
        for column in columns:
            text = f"lower(cast({quote(column)} as varchar))"
            match = " or ".join([f"trim({text}) in ({literals})"] + [
                f"contains({text}, '{v.replace(chr(39), chr(39) * 2)}')" for v in inside])
            counts.append(f"count(*) filter (where {match})")
        row = con.execute(f"select {', '.join(counts)} from {quote(schema)}.{quote(table)}"
                          ).fetchone()
        found |= {f"{schema}.{table}.{column}": count
                  for column, count in zip(columns, row) if count}
    return found
