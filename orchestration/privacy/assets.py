"""Dagster asset of the privacy requests, and the compaction of the warehouse after an erasure."""

from typing import Any

import dagster as dg

from orchestration.privacy.audit import (
    COMPACTION_TARGET, LOG, REQUESTS, SUPPRESSION, TargetResult, compaction_due, now, write_log,
)
from orchestration.privacy.runs import execute_privacy_requests
from orchestration.warehouse import WAREHOUSE_POOL, WarehouseResource


def _compact_after_erasure(warehouse: WarehouseResource,
                           context: dg.AssetExecutionContext) -> dict[str, Any]:
    """Compact the warehouse and drop serving snapshots built before the erasure; metadata.

    Runs with no connection open (this asset holds the warehouse pool, so no other asset has the
    file). A failure leaves the file as it was and is retried by the next run."""
    from orchestration.compaction import CompactionError, compact_warehouse
    from orchestration.serving.snapshot import snapshot_path
    from orchestration.serving.versions import remove_versions_before

    started = now()
    if warehouse.resolved_target != "duckdb":
        return {"compaction": dg.MetadataValue.text(
            f"not needed on {warehouse.resolved_target}: the engine reclaims deleted rows itself "
            "(PostgreSQL vacuum, Spark rewrites the table's files); there is no DuckDB file")}
    path = warehouse.resolved_path
    try:
        report = compact_warehouse(path)
    except (CompactionError, OSError) as error:
        context.log.error(f"warehouse compaction after erasure failed: {error}")
        return {"compaction": dg.MetadataValue.text(f"failed, retried next run: {error}")}
    with warehouse.open() as wh:
        write_log(wh, "compaction", started, [TargetResult(
            COMPACTION_TARGET, "compact", report.tables,
            detail=f"{report.bytes_before} -> {report.bytes_after} bytes in "
                   f"{report.seconds:.2f} s")])
    removed = remove_versions_before(snapshot_path(), started)
    context.log.info(f"warehouse compacted after erasure: {report.bytes_before:,} -> "
                     f"{report.bytes_after:,} bytes in {report.seconds:.2f} s; "
                     f"{len(removed)} earlier serving snapshot(s) removed")
    return {"compaction": dg.MetadataValue.text("done"),
            **{k: dg.MetadataValue.float(float(v)) if isinstance(v, float)
               else dg.MetadataValue.int(int(v)) for k, v in report.as_metadata().items()},
            "serving_snapshots_removed": dg.MetadataValue.int(len(removed))}


@dg.asset(
    key=dg.AssetKey(["privacy", "privacy_requests_executed"]),
    deps=[dg.AssetKey(["stg_privacy__requests"]), dg.AssetKey(["customer_identities"]),
          dg.AssetKey(["customer_source_records"]), dg.AssetKey(["customers"]),
          dg.AssetKey(["customer_consents"])],
    pool=WAREHOUSE_POOL,
    group_name="privacy",
    owners=["team:privacy"],
    kinds={"python"},
    description=(
        "Executes new data-subject requests (erasure, suppression, access, rectification) on the "
        "whole identity cluster, purges late-arriving rows of erased people, and records "
        "privacy.privacy_requests_processed, privacy.privacy_request_log and "
        "privacy.suppression_list (hashes only). docs/privacy.md."),
)
def privacy_requests_executed(context: dg.AssetExecutionContext,
                              warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.open() as wh:
        report = execute_privacy_requests(wh, log=context.log.info)
        open_requests = wh.rows(f"select status, count(*) from {REQUESTS} "
                                "group by status order by status")
        suppressed = wh.scalar(f"select count(distinct identifier_hash) from {SUPPRESSION}")
        compact = compaction_due(wh)
    failed = [o.request_id for o in report.outcomes if o.status == "failed"]
    metadata = {
        "requests_this_run": dg.MetadataValue.json(report.counts()),
        "requests_by_status": dg.MetadataValue.json(
            {status: int(count) for status, count in open_requests}),
        "late_rows_removed": dg.MetadataValue.int(sum(t.rows_affected for t in report.late_data)),
        "suppressed_identifiers": dg.MetadataValue.int(int(suppressed)),
        "destination_removals_confirmed": dg.MetadataValue.int(
            report.destination_removals_finished),
        "exports": dg.MetadataValue.json(
            [str(o.export_path) for o in report.outcomes if o.export_path]),
        "failed_requests": dg.MetadataValue.json(failed),
        "audit": dg.MetadataValue.md(f"`select * from {LOG} order by started_at desc`"),
    }
    if failed:
        context.log.warning(f"privacy requests failed: {failed}; see {LOG}")
    if compact:
        metadata.update(_compact_after_erasure(warehouse, context))
    return dg.MaterializeResult(metadata=metadata)


PRIVACY_ASSETS = [privacy_requests_executed]
