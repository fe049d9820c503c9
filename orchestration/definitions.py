"""The Dagster code location: every CDP asset, the full-pipeline job, its schedule and resources.

Loading it runs nothing heavy (no subprocess, no env mutation: `make parse` / `cdp prepare`
parse dbt beforehand), and a bad declaration fails only its own asset: an invalid sync becomes
a failing `activation/<name>` asset, an unreadable syncs file one failing
`activation/syncs_file_invalid`, invalid segment YAML a failing check on the segment model."""

import warnings
from pathlib import Path

import dagster as dg

from orchestration import segments
from orchestration.activation.assets import build_sync_assets, build_sync_schedules
from orchestration.dbt_assets import (
    cdp_dbt_models,
    dbt_resource,
    relation_input_specs,
    segment_declarations_valid,
)
from orchestration.ingestion.assets import load_landing_files
from orchestration.inputs import compiler as inputs_compiler
from orchestration.kpis import KPI_ASSETS
from orchestration.predictions import PREDICTION_ASSETS
from orchestration.privacy import PRIVACY_ASSETS
from orchestration.publication import bi_publication
from orchestration.quality import QUALITY_CHECKS
from orchestration.report import REPORT_ASSETS
from orchestration.sensors import build_landing_sensor, trigger_fast_path_selection
from orchestration.serving.assets import SERVING_ASSETS
from orchestration.settings import load_settings
from orchestration.triggers import TRIGGER_ASSETS
from orchestration.warehouse import WarehouseResource

FULL_PIPELINE_JOB = dg.define_asset_job(
    name="cdp_full_pipeline",
    selection=dg.AssetSelection.all(),
    description=("Load landing files, build and test every dbt model, execute privacy requests, fit "
                 "predictions, publish for BI and serving, sync destinations."),
)

TRIGGER_FAST_PATH_JOB = dg.define_asset_job(
    name="cdp_trigger_fast_path",
    selection=trigger_fast_path_selection(),
    description=("Micro-batch fast path: load new landing files, refresh the trigger audiences "
                 "through the current identity map and run the syncs they feed."),
)

DAILY_FULL_REFRESH = dg.ScheduleDefinition(
    name="daily_full_pipeline_0500_utc",
    job=FULL_PIPELINE_JOB,
    cron_schedule="0 5 * * *",
    execution_timezone="UTC",
    description="Runs the whole pipeline every day at 05:00 UTC.",
)

def warn_on_segment_problems() -> str | None:
    """Validate segments/*.yml at load: a problem is a warning here (the code location loads)
    and a failing check on the segment model in the run."""
    problem = segments.declaration_problem()
    if problem:
        warnings.warn(f"segment declarations: {problem}", stacklevel=2)
    return problem


def warn_on_input_problems() -> str | None:
    """Validate inputs/*.yml at load: an invalid declaration or stale generated models is a
    warning here (the code location loads on the last good generated models)."""
    problem = inputs_compiler.declaration_problem()
    if problem:
        warnings.warn(f"input declarations: {problem}", stacklevel=2)
    return problem


def build_definitions(sync_config: str | Path | None = None) -> dg.Definitions:
    """The code location; `sync_config` (default CDP_ACTIVATION_CONFIG or activation/syncs.yml)."""
    warn_on_segment_problems()
    warn_on_input_problems()
    return dg.Definitions(
        assets=[
            load_landing_files,
            cdp_dbt_models,
            *relation_input_specs(),
            *PREDICTION_ASSETS,
            *KPI_ASSETS,
            bi_publication,
            *REPORT_ASSETS,
            *PRIVACY_ASSETS,
            *SERVING_ASSETS,
            *TRIGGER_ASSETS,
            *build_sync_assets(sync_config),
        ],
        asset_checks=[*QUALITY_CHECKS, segment_declarations_valid],
        jobs=[FULL_PIPELINE_JOB, TRIGGER_FAST_PATH_JOB],
        schedules=[DAILY_FULL_REFRESH, *build_sync_schedules(sync_config)],
        sensors=[build_landing_sensor(FULL_PIPELINE_JOB, fast_path_job=TRIGGER_FAST_PATH_JOB)],
        resources={
            "dbt": dbt_resource(),
            "warehouse": WarehouseResource(),
        },
        # The one executor setting, for both jobs and ad-hoc UI materialisations: the steps of a
        # run share one process. The DuckDB file takes one writer at a time anyway (pool
        # duckdb_warehouse), and the multiprocess executor's process per step cost 10-15 s each
        # on 2 cores, more than most steps themselves (docs/near-real-time.md); a no-op sync
        # materialised from the UI took 2 min.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
