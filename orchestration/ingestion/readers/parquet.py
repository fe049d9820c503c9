"""Stage one Parquet file: its columns by name, its row numbers as line numbers."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from orchestration.ingestion.columns import Column, staging_select
from orchestration.ingestion.session import ROWS, STAGE, ident, literal

def parquet_header(con: duckdb.DuckDBPyConnection, reader_path: str) -> list[str]:
    return [row[0] for row in con.execute(
        f"describe select * from read_parquet({literal(reader_path)})"
    ).fetchall()]


def stage_parquet(
    con: duckdb.DuckDBPyConnection, reader_path: str, columns: Sequence[Column],
    max_field_bytes: int,
) -> None:
    select = staging_select(
        columns, [ident(c.file_name) for c in columns],
        f"read_parquet({literal(reader_path)}, file_row_number = true)",
        ["file_row_number + 1 as _line"], max_field_bytes,
    )
    con.execute(f"create temp table {STAGE} as {select}")
    con.execute(f"create temp view {ROWS} as select * from {STAGE}")
