"""The target warehouse for Python assets: one interface, a DuckDB, PostgreSQL and Spark engine.

The names below load on first use (PEP 562): importing a light submodule such as
`orchestration.warehouse.duckdb_limits`, which the dbt-duckdb plugin does in every dbt process,
must not import pandas and Dagster (3.5 s per dbt invocation) through this package's face.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestration.warehouse.base import Warehouse, WarehouseError, split_relation
    from orchestration.warehouse.resource import (
        ENGINES,
        WAREHOUSE_POOL,
        WarehouseResource,
        open_warehouse,
    )

# public name -> the submodule that defines it
_HOMES = {
    "Warehouse": "base", "WarehouseError": "base", "split_relation": "base",
    "ENGINES": "resource", "WAREHOUSE_POOL": "resource", "WarehouseResource": "resource",
    "open_warehouse": "resource",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
