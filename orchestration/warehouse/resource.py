"""The warehouse as a Dagster resource: the engine dbt targets, one short-lived session per use."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from orchestration.settings import load_settings
from orchestration.warehouse.base import Warehouse, WarehouseError

# Every asset that opens the DuckDB file runs in this pool; the instance limits it to one at a time
# (see orchestration/dagster.yaml), because DuckDB allows a single writer per file.
WAREHOUSE_POOL = "duckdb_warehouse"

ENGINES = ("duckdb", "postgres", "spark")


def open_warehouse(target: str, duckdb_path: Path | None = None,
                   read_only: bool = False) -> Warehouse:
    """A session on the engine of dbt target `target` (CDP_DBT_TARGET), connected the way the
    dbt profile's output of that name is (profiles/profiles.yml reads the same CDP_* variables)."""
    if target == "duckdb":
        from orchestration.warehouse.duckdb_engine import DuckDBWarehouse

        return DuckDBWarehouse(duckdb_path or load_settings().warehouse, read_only=read_only)
    if target == "postgres":
        from orchestration.warehouse.postgres_engine import PostgresWarehouse

        return PostgresWarehouse()
    if target == "spark":
        from orchestration.warehouse.spark_engine import SparkWarehouse

        return SparkWarehouse()
    raise WarehouseError(f"CDP_DBT_TARGET={target!r}: the Python assets run on {', '.join(ENGINES)}")


class WarehouseResource(dg.ConfigurableResource):
    """The target warehouse. `target` defaults to CDP_DBT_TARGET, `path` (DuckDB only) to
    CDP_WAREHOUSE, both as they are at run time."""

    path: str | None = None
    target: str | None = None

    @property
    def resolved_path(self) -> Path:
        return Path(self.path) if self.path else load_settings().warehouse

    @property
    def resolved_target(self) -> str:
        return self.target or load_settings().dbt_target

    @contextmanager
    def open(self, read_only: bool = False) -> Iterator[Warehouse]:
        """A session on the target engine, closed on exit."""
        warehouse = open_warehouse(self.resolved_target, self.resolved_path, read_only=read_only)
        try:
            yield warehouse
        finally:
            warehouse.close()
