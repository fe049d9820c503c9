"""The Dagster code location: every CDP asset, the full-pipeline job, its schedule and resources."""

from __future__ import annotations

import dagster as dg

from orchestration.dbt_assets import cdp_dbt_models, dbt_resource
from orchestration.ingestion_assets import load_landing_files
from orchestration.settings import load_settings
from orchestration.warehouse import WarehouseResource

load_settings().export_env()

FULL_PIPELINE_JOB = dg.define_asset_job(
    name="cdp_full_pipeline",
    selection=dg.AssetSelection.all(),
    description="Load landing files, then build and test every dbt model and Python asset.",
)

DAILY_FULL_REFRESH = dg.ScheduleDefinition(
    name="daily_full_pipeline_0500_utc",
    job=FULL_PIPELINE_JOB,
    cron_schedule="0 5 * * *",
    execution_timezone="UTC",
    description="Runs the whole pipeline every day at 05:00 UTC.",
)

defs = dg.Definitions(
    assets=[load_landing_files, cdp_dbt_models],
    jobs=[FULL_PIPELINE_JOB],
    schedules=[DAILY_FULL_REFRESH],
    resources={
        "dbt": dbt_resource(),
        "warehouse": WarehouseResource.from_env(),
    },
)
