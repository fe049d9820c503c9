"""Empty raw tables for the landing sources nothing was loaded of, so every dbt source exists.

dbt reads each landing source's raw table through `source()`; a source that has never had a
file (a shop without a POS, a partial source set) must still exist, with zero rows, or dbt fails
on the missing relation. The tables are made exactly as a loaded one is: the contract's typed
columns and the loader's `_source_file`, `_source_line`, `_loaded_at` (schema.ensure_raw_schema
on DuckDB; on PostgreSQL and Spark typed through the Warehouse interface from that same DDL, as
target.ensure_target_tables makes them before a load).
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from orchestration.ingestion.contract import LandingSource, landing_sources
from orchestration.ingestion.schema import ensure_raw_schema, raw_schema, raw_table
from orchestration.ingestion.session import prepare_session
from orchestration.warehouse import Warehouse
from orchestration.warehouse.duckdb_engine import DuckDBWarehouse


def ensure_empty_raw_tables(wh: Warehouse,
                            sources: Sequence[LandingSource] | None = None) -> list[str]:
    """Create, with zero rows, the raw table of each source (default: every landing source) that
    `wh` does not have yet; tables that exist are left as they are. Returns the ones created."""
    missing = [s for s in (landing_sources() if sources is None else sources)
               if not wh.exists(raw_table(s))]
    if not missing:
        return []
    if isinstance(wh, DuckDBWarehouse):
        ensure_raw_schema(wh.con, missing)
    else:
        _create_through_interface(wh, missing)
    return [raw_table(s) for s in missing]


def _create_through_interface(wh: Warehouse, sources: Sequence[LandingSource]) -> None:
    """The tables made in an in-memory DuckDB by the loader's DDL, then created in `wh` from
    their empty Arrow schema (the loader's own way to type a non-DuckDB target's tables)."""
    from orchestration.ingestion.target import ensure_target_columns  # target.py calls us

    scratch = duckdb.connect()
    try:
        prepare_session(scratch)
        ensure_raw_schema(scratch, sources)
        wh.ensure_schema(raw_schema(sources))
        for source in sources:
            ensure_target_columns(wh, scratch, raw_table(source))
    finally:
        scratch.close()
