"""The DuckDB session one load runs in: its settings, the temp objects of one file, SQL quoting."""

from __future__ import annotations

import duckdb

# Session objects used while one file is staged; dropped again before the next file.
STAGE = "_landing_stage"
ROWS = "_landing_rows"  # view over STAGE with _line, the row's line in its file
SKIPS = "_landing_skips"
EXTRA = "_landing_extra_lines"
LINES = "_landing_line_numbers"
BAD = "_landing_bad_rows"
CSV_REJECT_ERRORS = "_landing_csv_reject_errors"
CSV_REJECT_SCANS = "_landing_csv_reject_scans"


def prepare_session(con: duckdb.DuckDBPyConnection) -> None:
    # Timestamps without an offset are UTC; the CSV row order must follow the file.
    con.execute("set TimeZone = 'UTC'")
    con.execute("set preserve_insertion_order = true")
    con.execute("set enable_progress_bar = false")  # no bars in pipeline logs


def drop_session_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"drop view if exists temp.{ROWS}")
    for table in (STAGE, SKIPS, EXTRA, LINES, BAD, CSV_REJECT_ERRORS, CSV_REJECT_SCANS):
        con.execute(f"drop table if exists temp.{table}")


def count_of(con: duckdb.DuckDBPyConnection, sql: str, parameters: list[object]) -> int:
    row = con.execute(sql, parameters).fetchone()
    return int(row[0]) if row else 0

def ident(name: str) -> str:

    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
