"""Dagster asset `raw_replicated`: the DuckDB raw tables copied to dbt's engine when it is not DuckDB."""

import dagster as dg

from orchestration.catalog import catalog
from orchestration.ingestion.contract import SOURCES
from orchestration.replication import ReplicationError, replicate
from orchestration.settings import load_settings
from orchestration.warehouse import WAREHOUSE_POOL, WarehouseResource

REPLICATED_PREFIX = "raw_replicated"


def replicated_key(source_name: str) -> dg.AssetKey:
    """Key of a raw table as it exists on the dbt target; dbt sources depend on it (not on raw/)."""
    return dg.AssetKey([REPLICATED_PREFIX, source_name])


def build_replication_assets(target: str) -> list[dg.AssetsDefinition]:
    """`raw_replicated` for a non-DuckDB dbt target; nothing for DuckDB, where dbt reads raw.* itself."""
    if target == "duckdb":
        return []
    specs = [
        dg.AssetSpec(
            key=replicated_key(source.name),
            deps=[dg.AssetKey(["raw", source.name])],
            description=f"raw.{source.name} copied from the DuckDB file into the {target} target.",
            group_name="ingestion",
            owners=["team:data-engineering"],
            kinds={target},
            tags={"layer": "raw"},
        )
        for source in SOURCES
    ]

    @dg.multi_asset(specs=specs, pool=WAREHOUSE_POOL, can_subset=False, name=REPLICATED_PREFIX)
    def raw_replicated(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        """Replace raw.* (and predictions.*) on the dbt target with the DuckDB file's tables."""
        settings = load_settings()
        settings.export_env()
        if settings.dbt_target != target:
            raise ReplicationError(
                f"raw_replicated was defined for target {target!r} but CDP_DBT_TARGET is "
                f"{settings.dbt_target!r}: reload the code location")
        copies = {copy.name: copy.rows for copy in replicate(warehouse.resolved_path, target)}
        context.log.info(", ".join(f"{name}={rows}" for name, rows in copies.items()))
        for source in SOURCES:
            name = catalog().raw_relation(source.name)
            if name not in copies:
                raise ReplicationError(f"{target}: raw table {name} was not replicated")
            yield dg.MaterializeResult(
                asset_key=replicated_key(source.name),
                metadata={"dagster/row_count": dg.MetadataValue.int(int(copies[name])),
                          "target": target},
            )

    return [raw_replicated]
