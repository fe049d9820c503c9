"""Dagster assets and asset checks for the syncs declared in activation/syncs.yml."""

import warnings
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from orchestration.activation import state
from orchestration.activation.config import (INVALID_FILE_NAME, ActivationConfig, SyncConfig,
                                             load_config_by_sync)
from orchestration.activation.engine import SyncResult, run_sync
from orchestration.warehouse import WAREHOUSE_POOL, WarehouseResource
from orchestration.warehouse.base import WarehouseError

OWNER = "team:marketing-ops"
# Syncs run after the privacy requests, so an erased or suppressed person is removed downstream.
PRIVACY_REQUESTS_EXECUTED = dg.AssetKey(["privacy", "privacy_requests_executed"])


def failed_upstream_checks(context: dg.AssetExecutionContext, upstream: dg.AssetKey,
                           lookback: int = 1000) -> list[str]:
    """Checks of the upstream asset whose latest evaluation failed and blocks (or is an error).

    Within one run Dagster itself skips this asset after a failed blocking check; this covers a
    sync materialised on its own after a run whose upstream check failed."""
    latest: dict[str, Any] = {}
    with warnings.catch_warnings():  # get_event_records is deprecated for 2.0, without successor
        warnings.simplefilter("ignore", DeprecationWarning)
        events = context.instance.get_event_records(
            dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION),
            limit=lookback, ascending=False)
    for record in events:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if getattr(evaluation, "asset_key", None) != upstream:
            continue
        latest.setdefault(evaluation.check_name, evaluation)
    return sorted(
        name for name, evaluation in latest.items()
        if not evaluation.passed
        and (evaluation.blocking or evaluation.severity == dg.AssetCheckSeverity.ERROR))


def result_metadata(result: SyncResult) -> dict[str, Any]:
    c = result.counts
    return {
        "run_id": result.run_id,
        "status": result.status,
        "rows_added": c.added,
        "rows_changed": c.changed,
        "rows_removed": c.removed,
        "rows_sent": c.sent,
        "rows_acknowledged": c.acknowledged,
        "rows_failed": c.failed,
        "rows_invalid": c.invalid,
        "batches": c.batches,
        "retries": c.retries,
        "duration_seconds": round(result.duration_seconds, 3),
        "error": result.error or "",
        "row_errors": dg.MetadataValue.md(
            f"`select * from {state.ROW_ERRORS} where run_id = '{result.run_id}'`"),
    }


def build_sync_asset(config: ActivationConfig, sync: SyncConfig) -> dg.AssetsDefinition:
    upstream = dg.AssetKey(sync.source_asset_key.split("/"))
    destination = sync.destination.type

    @dg.asset(
        key=dg.AssetKey(["activation", sync.name]),
        deps=[upstream, PRIVACY_REQUESTS_EXECUTED],
        pool=WAREHOUSE_POOL,
        group_name="activation",
        owners=[OWNER],
        kinds={"python", destination},
        description=(sync.description or f"Sync {sync.source_label} to {destination} ({sync.mode})")
        + "; sends only rows changed since the last acknowledged run.",
        metadata={"mode": sync.mode, "source": sync.source_label, "destination": destination,
                  "consent_purposes": ", ".join(sync.consent_purposes) or "none",
                  "schedule": sync.schedule or ""},
    )
    def sync_asset(context: dg.AssetExecutionContext,
                   warehouse: WarehouseResource) -> dg.MaterializeResult:
        blocked = failed_upstream_checks(context, upstream)
        if blocked:
            raise dg.Failure(description=(
                f"sync {sync.name} not run: upstream {upstream.to_user_string()} has failing "
                f"blocking checks {blocked}"))
        with warehouse.open() as wh:
            result = run_sync(wh, config, sync, log=context.log.info)
        metadata = result_metadata(result)
        if not result.ok:
            raise dg.Failure(description=f"sync {sync.name} failed: {result.error}",
                             metadata=metadata)
        return dg.MaterializeResult(metadata=metadata)

    return sync_asset


def build_sync_check(sync: SyncConfig) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(["activation", sync.name]),
        name="last_run_delivered",
        pool=WAREHOUSE_POOL,
        description="The last run succeeded and every row was acknowledged (no rejected rows, "
                    "no invalid keys: those warn).",
    )
    def last_run_delivered(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        try:
            with warehouse.open(read_only=True) as wh:
                last = state.last_run(wh, sync.name)
        except (duckdb.IOException, WarehouseError):  # no warehouse file / server yet
            last = None
        if last is None:
            return dg.AssetCheckResult(passed=False, description="the sync has never run")
        metadata = {k: v for k, v in last.items() if v is not None
                    and (k.startswith("rows_") or k in ("status", "run_id", "error"))}
        if last["status"] != "success":
            return dg.AssetCheckResult(passed=False, metadata=metadata,
                                       description=f"last run {last['status']}: {last['error']}")
        problems = (last["rows_failed"] or 0) + (last["rows_invalid"] or 0)
        return dg.AssetCheckResult(
            passed=problems == 0, metadata=metadata,
            severity=dg.AssetCheckSeverity.WARN,
            description=None if problems == 0 else
            f"{last['rows_failed']} rows rejected, {last['rows_invalid']} invalid keys")

    return last_run_delivered


def build_broken_sync_asset(name: str, error: str) -> dg.AssetsDefinition:
    """The asset of a sync whose declaration is invalid (or, under INVALID_FILE_NAME, of a sync
    file that cannot be read at all): it fails with the error, naming the file and field or
    line, and the rest of the code location loads."""
    what = ("no sync is run: the sync file is invalid" if name == INVALID_FILE_NAME
            else f"sync {name} is not run: its declaration is invalid")

    @dg.asset(key=dg.AssetKey(["activation", name]), group_name="activation", owners=[OWNER],
              kinds={"python"}, description=f"Invalid sync declaration: {error}")
    def broken_sync() -> None:
        raise dg.Failure(description=f"{what}\n{error}")

    return broken_sync


def build_sync_assets(config_path: str | Path | None = None) -> list:
    """One asset and one asset check per enabled sync (those whose `requires_env` are set),
    and a failing asset per sync whose declaration is invalid."""
    config, broken = load_config_by_sync(config_path)
    built: list = [build_broken_sync_asset(name, error) for name, error in broken.items()]
    for sync in config.syncs:
        if sync.is_active:
            built.extend([build_sync_asset(config, sync), build_sync_check(sync)])
    return built


def build_sync_schedules(config_path: str | Path | None = None) -> list[dg.ScheduleDefinition]:
    """A schedule per sync that declares `schedule:` (cron, UTC) materialising just that sync."""
    config, _ = load_config_by_sync(config_path)
    return [
        dg.ScheduleDefinition(
            name=f"activation_{sync.name}_schedule",
            target=dg.AssetSelection.assets(dg.AssetKey(["activation", sync.name])),
            cron_schedule=sync.schedule,
            execution_timezone="UTC",
        )
        for sync in config.syncs if sync.is_active and sync.schedule
    ]
