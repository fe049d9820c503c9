"""Every dbt unit test of the project, on an empty-built warehouse (production builds exclude them).

The models are built with `dbt run --empty` (so dbt knows every input's columns) on raw tables
created empty from the landing contract, then only the unit tests of our folders run: fast, and
independent of sample data.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from orchestration.ingestion.contract import SOURCES
from orchestration.phones import ensure_phone_numbers_table
from orchestration.settings import PROFILES_DIR, PROJECT_DIR

TYPES = {"text": "varchar", "timestamp": "timestamptz", "number": "double", "integer": "bigint"}
FOLDERS = ("models/staging", "models/intermediate/features", "models/marts/features",
           "models/intermediate/privacy", "models/marts/privacy", "models/intermediate/segments",
           "models/marts/segments", "models/marts/kpis")
PREDICTIONS_DDL = """
    create schema if not exists predictions;
    create table if not exists predictions.customer_predictions (
        customer_id varchar, as_of_at timestamp, p_alive double, expected_purchases_90d double,
        expected_purchases_365d double, predicted_clv_90d double, predicted_clv_365d double,
        expected_order_value double, churn_risk double, ltv_model_version varchar,
        churn_model_version varchar)
"""


def dbt(args: list[str], env: dict[str, str], target_path: Path) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("dbt")), *args, "--project-dir", str(PROJECT_DIR),
               "--profiles-dir", str(PROFILES_DIR), "--target-path", str(target_path)]
    return subprocess.run(command, env=env, cwd=PROJECT_DIR, capture_output=True, text=True,
                          timeout=600)


def empty_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists raw")
    for source in SOURCES:
        columns = ", ".join(f'"{c}" {TYPES[source.column_type(c)]}' for c in source.known_columns)
        con.execute(f"create table raw.{source.name} ({columns}, _loaded_at timestamptz, "
                    "_source_file varchar, _source_line bigint)")
    ensure_phone_numbers_table(con)  # the loader's phone lookup, read by staging
    con.execute(PREDICTIONS_DDL)


@pytest.fixture(scope="session")
def empty_warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Path]:
    root = tmp_path_factory.mktemp("features_dbt")
    warehouse = root / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        empty_raw_tables(con)
    env = {**os.environ, "CDP_WAREHOUSE": str(warehouse), "CDP_DBT_TARGET": "duckdb"}
    env.pop("CDP_AS_OF", None)
    target = root / "target"
    selection = " ".join(f"+path:{folder}" for folder in FOLDERS)
    for args in (["seed", "--quiet"], ["run", "--empty", "--quiet", "--select", selection]):
        result = dbt(args, env, target)
        assert result.returncode == 0, result.stdout + result.stderr
    return env, target


def test_every_dbt_unit_test_passes(
    empty_warehouse: tuple[dict[str, str], Path],
) -> None:
    env, target = empty_warehouse
    selection = " ".join(f"test_type:unit,path:{folder}" for folder in FOLDERS)
    result = dbt(["test", "--select", selection], env, target)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert " ERROR=0" in output
    for name in ("transactions_exclude_cancelled_and_unlinked_purchases",
                 "transactions_attributed_stop_before_the_as_of_date",
                 "customer_features_defaults_rates_and_abandoned_carts",
                 "segments_respect_consent_nulls_and_time_windows",
                 "membership_history_entries_exits_and_reentries",
                 "journey_stage_rules_and_their_boundaries",
                 "orders_normalise_email_phone_currency",
                 "emails_one_mailbox_one_identifier",
                 "consent_decisions_from_consents_and_email_withdrawals",
                 "campaign_performance_unique_engagement_and_conversion_window",
                 "cdp_kpis_channel_honest_conversion_and_consented_growth"):
        assert name in output, name
