"""The target warehouse for Python assets: one interface, a DuckDB, PostgreSQL and Spark engine."""

from orchestration.warehouse.base import Warehouse, WarehouseError, split_relation
from orchestration.warehouse.resource import (
    ENGINES,
    WAREHOUSE_POOL,
    WarehouseResource,
    open_warehouse,
)

__all__ = ["ENGINES", "WAREHOUSE_POOL", "Warehouse", "WarehouseError", "WarehouseResource",
           "open_warehouse", "split_relation"]
