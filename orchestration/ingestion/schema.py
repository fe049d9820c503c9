"""The raw schema the loader writes: relation names as dbt declares the sources, and their DDL.

A landing source lands in the table of the dbt source it feeds (`models/staging/*/_*__sources.yml`),
so the schema is declared once, in dbt; the load log and the rejects sit beside the raw tables.
Names are looked up when a load runs, never at import.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from orchestration.catalog import CatalogError, catalog
from orchestration.ingestion.columns import METADATA_COLUMNS, SQL_TYPES
from orchestration.ingestion.contract import SOURCES, SOURCES_BY_NAME, LandingSource
from orchestration.ingestion.session import ident

LOAD_LOG_NAME = "_load_log"
LOAD_REJECTS_NAME = "_load_rejects"


def raw_table(source: LandingSource) -> str:
    """`schema.table` of the dbt source that `source` lands in (`raw.shop_orders`). A declared
    input whose dbt source is not generated yet lands in the raw schema under its own name."""
    cat = catalog()
    try:
        return cat.source(source.dbt_source, source.name)
    except CatalogError:
        if source.name in SOURCES_BY_NAME:
            raise
        return f"{raw_schema()}.{source.name}"


def raw_schema(sources: Sequence[LandingSource] = SOURCES) -> str:
    """The one schema dbt declares for the landing sources; the loader's own tables go there."""
    cat = catalog()
    schemas = {str(cat.source_node(s.dbt_source, s.name)["schema"]) for s in sources
               if s.name in SOURCES_BY_NAME or _in_dbt(s)}
    if len(schemas) != 1:
        raise ValueError(
            "the landing sources must share one raw schema in their dbt source YAML "
            f"(models/staging/*/_*__sources.yml), found: {', '.join(sorted(schemas)) or 'none'}")
    return schemas.pop()


def _in_dbt(source: LandingSource) -> bool:
    try:
        catalog().source_node(source.dbt_source, source.name)
    except CatalogError:
        return False
    return True


def load_log_table() -> str:
    """`schema.table` of the load log: one row per loaded file version."""
    return f"{raw_schema()}.{LOAD_LOG_NAME}"


def load_rejects_table() -> str:
    """`schema.table` of the rejects: one row per rejected value or malformed line."""
    return f"{raw_schema()}.{LOAD_REJECTS_NAME}"


def ensure_raw_schema(
    con: duckdb.DuckDBPyConnection, sources: Sequence[LandingSource] = SOURCES
) -> None:
    """Create schema raw, an empty table per source with every known column, the log and rejects."""
    schema = raw_schema()
    con.execute(f"create schema if not exists {schema}")
    for source in sources:
        columns = [(c, SQL_TYPES[source.column_type(c)]) for c in source.known_columns]
        columns += list(METADATA_COLUMNS.items())
        ddl = ",\n    ".join(f"{ident(name)} {sql_type}" for name, sql_type in columns)
        con.execute(f"create table if not exists {raw_table(source)} (\n    {ddl}\n)")
        for name, sql_type in columns:  # a contract that gained a column since the table was made
            con.execute(f"alter table {raw_table(source)} "
                        f"add column if not exists {ident(name)} {sql_type}")
    con.execute(
        f"""
        create table if not exists {load_log_table()} (
            _source_file varchar,
            source varchar,
            content_sha256 varchar,
            rows_loaded bigint,
            rows_rejected bigint,
            rows_replaced bigint,
            _loaded_at timestamptz
        )
        """
    )
    con.execute(
        f"""
        create table if not exists {load_rejects_table()} (
            source varchar,
            _source_file varchar,
            _source_line bigint,
            column_name varchar,
            raw_value varchar,
            reason varchar,
            _loaded_at timestamptz
        )
        """
    )
