"""Dagster assets that load the landing folder into the warehouse's raw schema."""

import dagster as dg

from orchestration.ingestion.contract import SOURCES
from orchestration.ingestion.loader import PrivacyAtLoad, load_landing
from orchestration.ingestion.schema import raw_table
from orchestration.privacy import drop_suppressed_rows, purge_late_rows_at_load
from orchestration.settings import load_settings
from orchestration.warehouse import WAREHOUSE_POOL, WarehouseResource

# Rows of erased people never reach raw: dropped per file, late ones purged after the load.
PRIVACY_AT_LOAD = PrivacyAtLoad(drop_suppressed_rows=drop_suppressed_rows,
                                purge_late_rows=purge_late_rows_at_load)

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
        report = load_landing(settings.landing_dir, con, privacy=PRIVACY_AT_LOAD)
        row_counts = {
            source.name: con.execute(f"select count(*) from {raw_table(source)}").fetchone()[0]
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
