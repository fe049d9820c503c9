"""The DuckDB warehouse as a Dagster resource: one short-lived connection per asset."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from orchestration.settings import load_settings

# Every asset that opens the DuckDB file runs in this pool; the instance limits it to one at a time
# (see orchestration/dagster.yaml), because DuckDB allows a single writer per file.
WAREHOUSE_POOL = "duckdb_warehouse"


class WarehouseResource(dg.ConfigurableResource):
    """Path of the DuckDB warehouse file; when unset, CDP_WAREHOUSE as it is at run time."""

    path: str | None = None

    @property
    def resolved_path(self) -> Path:
        return Path(self.path) if self.path else load_settings().warehouse

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        path = self.resolved_path
        path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(path), read_only=read_only)
        try:
            con.execute("set TimeZone = 'UTC'")
            yield con
        finally:
            con.close()
