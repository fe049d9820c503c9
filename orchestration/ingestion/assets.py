"""Dagster assets that load the landing folder into the target warehouse's raw schema."""

from typing import Any

import dagster as dg

from orchestration.ingestion.contract import landing_sources
from orchestration.ingestion.loader import PrivacyAtLoad
from orchestration.ingestion.schema import raw_table
from orchestration.ingestion.target import load_landing_into
from orchestration.phones import phone_numbers_relation
from orchestration.privacy import SUPPRESSION, drop_suppressed_rows, purge_late_rows_at_load
from orchestration.settings import load_settings
from orchestration.warehouse import WAREHOUSE_POOL, Warehouse, WarehouseResource


def _nothing_erased(session: Any) -> bool:
    """On a non-DuckDB target without a suppression list nobody was erased: the privacy steps
    have nothing to do (the same first check they make themselves, made here through the
    interface so a fresh PostgreSQL/Spark target loads before privacy has ever run there)."""
    return isinstance(session, Warehouse) and not session.exists(SUPPRESSION)


def _drop_suppressed_at_load(session: Any, source_name: str, source_file: str) -> int:
    return 0 if _nothing_erased(session) else drop_suppressed_rows(session, source_name,
                                                                   source_file)


def _purge_late_at_load(session: Any) -> int:
    return 0 if _nothing_erased(session) else purge_late_rows_at_load(session)


# Rows of erased people never reach raw: dropped per file, late ones purged after the load.
PRIVACY_AT_LOAD = PrivacyAtLoad(drop_suppressed_rows=_drop_suppressed_at_load,
                                purge_late_rows=_purge_late_at_load)

# Built-in and declared landing sources, read when the definitions load (Dagster needs the
# specs then); a declaration added later shows once the code location reloads.
LOADED_SOURCES = landing_sources()

PHONE_LOOKUP_KEY = dg.AssetKey(["raw", "_phone_numbers"])

RAW_SPECS = [
    dg.AssetSpec(
        key=dg.AssetKey(["raw", source.name]),
        description=f"{source.description} Raw rows from landing files `{source.name}.*`.",
        group_name="ingestion",
        owners=["team:data-engineering"],
        kinds={"duckdb"},
        tags={"layer": "raw"},
    )
    for source in LOADED_SOURCES
] + [
    # The phone lookup (dbt source phone._phone_numbers) is refreshed by every load, also for the
    # phone columns of declared warehouse inputs: staging that joins it (a `from: relation` input
    # with a phone identifier has no raw table upstream) runs after the load, never before it.
    dg.AssetSpec(
        key=PHONE_LOOKUP_KEY,
        description="Phone numbers of raw tables and declared inputs parsed to E.164 "
                    "(orchestration/phones.py), refreshed by every load.",
        group_name="ingestion",
        owners=["team:data-engineering"],
        kinds={"duckdb"},
        tags={"layer": "raw"},
    ),
]


@dg.multi_asset(specs=RAW_SPECS, pool=WAREHOUSE_POOL, can_subset=False, name="load_landing_files")
def load_landing_files(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """Load new or changed landing files (CDP_LANDING_DIR) into raw.<source> of the target
    warehouse (CDP_DBT_TARGET), with rejects and a load log."""
    settings = load_settings()
    with warehouse.open() as wh:
        report = load_landing_into(settings.landing_dir, wh, LOADED_SOURCES,
                                   privacy=PRIVACY_AT_LOAD)
        row_counts = {source.name: wh.scalar(f"select count(*) from {raw_table(source)}")
                      for source in LOADED_SOURCES}
        phone_rows = wh.scalar(f"select count(*) from {phone_numbers_relation()}")
    for warning in report.warnings:  # invalid declarations first, said loudly in the run log
        context.log.warning(warning)
    context.log.info(report.summary())
    for source in LOADED_SOURCES:
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
    yield dg.MaterializeResult(asset_key=PHONE_LOOKUP_KEY, metadata={
        "dagster/row_count": dg.MetadataValue.int(int(phone_rows)),
    })
