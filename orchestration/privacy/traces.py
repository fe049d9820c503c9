"""Audit scan: every table and view, every column, searched for given values."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from orchestration.privacy.sql import Target, ident, list_relations, text, warehouse_of


def find_traces(target: Target, values: Iterable[str],
                skip: Sequence[tuple[str, str]] = ()) -> dict[str, int]:
    """Rows of any table or view, in any column cast to text, holding one of `values`:
    `{"schema.table.column": rows}`. Case-insensitive; values with letters (emails, ids) match
    inside longer text (JSON payloads), all-digit values (phones) only whole. For auditing.
    One query per relation (a view is computed once, not once per column)."""
    wh = warehouse_of(target)
    wanted = sorted({v.strip().lower() for v in values if v and v.strip()})
    if not wanted:
        return {}
    literals = ", ".join("'" + v.replace("'", "''") + "'" for v in wanted)
    inside = [v for v in wanted if any(ch.isalpha() for ch in v)]
    found: dict[str, int] = {}
    for schema, table, _ in list_relations(wh, ("information_schema",)):
        if (schema, table) in skip:
            continue
        columns = wh.columns(f"{schema}.{table}")
        counts = []
        for column in columns:
            lowered = f"lower({text(wh, ident(wh, column))})"
            # position(): substring search the three engines share (DuckDB's contains() is not)
            match = " or ".join([f"trim({lowered}) in ({literals})"] + [
                f"position('{v.replace(chr(39), chr(39) * 2)}' in {lowered}) > 0"
                for v in inside])
            counts.append(f"sum(case when {match} then 1 else 0 end)")
        if not counts:
            continue
        row = wh.rows(f"select {', '.join(counts)} from {schema}.{table}")[0]
        found |= {f"{schema}.{table}.{column}": int(count)
                  for column, count in zip(columns, row) if count}
    return found
