"""Dagster assets that load the landing folder into the warehouse's raw schema."""

import dagster as dg

from orchestration.ingestion import load_landing
from orchestration.landing_contract import SOURCES
from orchestration.settings import load_settings
from orchestration.warehouse import WAREHOUSE_POOL, WarehouseResource

RAW_SPECS = [
    dg.AssetSpec(
        key=dg.AssetKey(["raw", source.name]),
        description=f"{source.description} Raw rows from landing files `{source.name}.*`.",
        group_name="ingestion",
        owners=["team:data-engineering"],
        kinds={"duckdb"},
        tags={"layer": "raw"},
    )
    for source in SOURCES
]


@dg.multi_asset(specs=RAW_SPECS, pool=WAREHOUSE_POOL, can_subset=False, name="load_landing_files")
def load_landing_files(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """Load new or changed landing files (CDP_LANDING_DIR) into raw.<source>, with rejects and a load log."""
    settings = load_settings()
    with warehouse.connect() as con:
        report = load_landing(settings.landing_dir, con)
        row_counts = {
            source.name: con.execute(f"select count(*) from raw.{source.name}").fetchone()[0]
            for source in SOURCES
        }
    for warning in report.warnings:
        context.log.warning(warning)
    context.log.info(report.summary())
    for source in SOURCES:
        result = report.sources.get(source.name)
        yield dg.MaterializeResult(
            asset_key=dg.AssetKey(["raw", source.name]),
            metadata={
                "dagster/row_count": dg.MetadataValue.int(int(row_counts[source.name])),
                "rows_loaded_this_run": dg.MetadataValue.int(result.rows_loaded if result else 0),
                "rows_rejected_this_run": dg.MetadataValue.int(result.rows_rejected if result else 0),
                "landing_dir": dg.MetadataValue.path(str(settings.landing_dir)),
            },
        )
