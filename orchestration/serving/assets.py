"""The serving snapshot as a Dagster asset, downstream of the marts and predictions it reads."""

import dagster as dg

from orchestration.catalog import catalog
from orchestration.publication import published_tables
from orchestration.settings import default_salt_warning, load_settings
from orchestration.serving.snapshot import build_snapshot, snapshot_path
from orchestration.warehouse import WAREHOUSE_POOL, WarehouseResource

UPSTREAM = [
    dg.AssetKey(["customers"]),
    dg.AssetKey(["customer_identities"]),
    dg.AssetKey(["customer_id_merges"]),
    dg.AssetKey(["segment_memberships"]),
    dg.AssetKey(["customer_journey_stages"]),
    dg.AssetKey(["customer_features"]),
    dg.AssetKey(["customer_events"]),
    dg.AssetKey(["stg_privacy__requests"]),
    dg.AssetKey(["predictions", "customer_predictions"]),
]
# Executes erasure and suppression requests (orchestration/privacy/): the snapshot comes after.
PRIVACY_UPSTREAM = dg.AssetKey(["privacy", "privacy_requests_executed"])


@dg.asset(
    name="serving_snapshot",
    deps=[*UPSTREAM, PRIVACY_UPSTREAM],
    pool=WAREHOUSE_POOL,
    group_name="serving",
    owners=["team:data-engineering"],
    kinds={"duckdb", "fastapi"},  # the snapshot file; it reads the target (CDP_DBT_TARGET)
    tags={"layer": "serving", "contains_pii": "true"},
    description=(
        "The profile API's read-only DuckDB file (CDP_SERVING_SNAPSHOT, default "
        "data/publication/cdp_serving.duckdb): one JSON document per customer with profile, "
        "segments, predictions and recent events, PII in clear (served only with scope pii:read), "
        "erased people left out. Swapped atomically; see docs/serving.md."
    ),
)
def serving_snapshot(context: dg.AssetExecutionContext,
                     warehouse: WarehouseResource) -> dg.MaterializeResult:
    tables = {t.name: t for t in published_tables(dict(catalog().manifest))}
    pii = set(tables["customers"].pii_columns) if "customers" in tables else set()
    events = tables.get("customer_events")
    salt_warning = default_salt_warning(load_settings().landing_dir)
    if salt_warning:
        context.log.warning(salt_warning)
    with warehouse.open() as wh:
        report = build_snapshot(wh, snapshot_path(), customer_pii=pii,
                                event_record_ids=dict(events.record_id_columns) if events else None)
    if report.missing:
        context.log.warning("serving snapshot built without: " + ", ".join(report.missing))
    context.log.info(f"serving snapshot {report.path}: {report.customers} profiles")
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(report.path)),
        "dagster/row_count": dg.MetadataValue.int(report.customers),
        **report.as_metadata(),
    })


SERVING_ASSETS = [serving_snapshot]
