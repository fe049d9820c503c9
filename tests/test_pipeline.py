"""End-to-end: real Dagster materialisations and the `cdp run` CLI on generated data."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.ingestion.assets import load_landing_files
from orchestration.ingestion.contract import SOURCES
from orchestration.warehouse import WarehouseResource

STAGING_MODELS = {
    "segment_identifies": "stg_segment__identifies",
    "segment_tracks": "stg_segment__tracks",
    "segment_pages": "stg_segment__pages",
    "crm_contacts": "stg_crm__contacts",
    "shop_orders": "stg_shop__orders",
    "shop_order_lines": "stg_shop__order_lines",
    "pos_transactions": "stg_pos__transactions",
    "loyalty_members": "stg_loyalty__members",
    "email_events": "stg_email__events",
    "support_tickets": "stg_support__tickets",
    "consents": "stg_consent__consents",
    "privacy_requests": "stg_privacy__requests",
}

pytestmark = pytest.mark.slow


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *args],
        env=env, capture_output=True, text=True, timeout=900,
    )


def raw_counts(warehouse: str) -> dict[str, int]:
    con = duckdb.connect(warehouse, read_only=True)
    try:
        counts = {s.name: con.execute(f"select count(*) from raw.{s.name}").fetchall()[0][0]
                  for s in SOURCES}
        counts["_load_rejects"] = con.execute(
            "select count(*) from raw._load_rejects").fetchall()[0][0]
        return counts
    finally:
        con.close()


@pytest.fixture(scope="module")
def built(sample_pipeline_run: dict[str, str]) -> dict[str, str]:
    """One full `cdp run` (the `make run` path) on the sample landing folder: the session's
    shared run (tests/conftest.py), whose files the tests here only read or copy."""
    env = dict(sample_pipeline_run)
    env.pop("DAGSTER_HOME")  # a test's own run goes on an ephemeral instance
    return env


def test_every_source_has_a_staging_model() -> None:
    assert set(STAGING_MODELS) == {source.name for source in SOURCES}


def test_cli_run_builds_every_staging_model_from_the_landing_folder(built: dict[str, str]) -> None:
    con = duckdb.connect(built["CDP_WAREHOUSE"], read_only=True)
    staged = {
        model: con.execute(f"select count(*) from main_staging.{model}").fetchall()[0][0]
        for model in STAGING_MODELS.values()
    }
    con.close()
    # Every source of the sample has rows, and staging keeps them.
    assert all(count > 0 for count in staged.values()), staged
    raw = raw_counts(built["CDP_WAREHOUSE"])
    assert staged["stg_shop__orders"] <= raw["shop_orders"]
    assert raw["_load_rejects"] > 0  # the generator's unparseable rows were quarantined, not lost


def test_reloading_the_same_files_adds_nothing(built: dict[str, str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    warehouse = tmp_path / "copy.duckdb"
    shutil.copy(built["CDP_WAREHOUSE"], warehouse)
    before = raw_counts(str(warehouse))
    monkeypatch.setenv("CDP_LANDING_DIR", built["CDP_LANDING_DIR"])
    result = dg.materialize([load_landing_files],
                            resources={"warehouse": WarehouseResource(path=str(warehouse))})
    assert result.success
    assert raw_counts(str(warehouse)) == before


def test_cli_run_fails_loudly_and_keeps_last_good_state(
    built: dict[str, str], tmp_path: Path, sample_landing: Path
) -> None:
    warehouse = tmp_path / "copy.duckdb"
    shutil.copy(built["CDP_WAREHOUSE"], warehouse)
    before = raw_counts(str(warehouse))

    broken = tmp_path / "broken_landing"
    shutil.copytree(sample_landing, broken)
    next(broken.glob("shop_orders.*")).unlink()
    (broken / "shop_orders.csv").write_text("order_id,email\no-1,a@b.com\n")
    env = {**built, "CDP_LANDING_DIR": str(broken), "CDP_WAREHOUSE": str(warehouse),
           "CDP_PUBLICATION": str(tmp_path / "publication.duckdb"),
           "CDP_ACTIVATION_DIR": str(tmp_path / "activation"),
           "CDP_SERVING_SNAPSHOT": str(tmp_path / "serving.duckdb"),
           "CDP_RUN_LOG": str(tmp_path / "cdp-run.log")}

    result = run_cli(env, "run")
    assert result.returncode != 0
    assert "shop_orders.csv" in result.stderr
    assert "total_amount" in result.stderr  # the missing required column is named
    assert "load_landing_files" in result.stderr  # and so is the failing step
    assert raw_counts(str(warehouse)) == before


def test_open_bi_reader_does_not_block_the_next_run(built: dict[str, str], tmp_path: Path) -> None:
    """An analyst's connection stays open on the publication while the whole pipeline reruns."""
    warehouse = tmp_path / "copy.duckdb"
    publication = tmp_path / "publication.duckdb"
    shutil.copy(built["CDP_WAREHOUSE"], warehouse)
    shutil.copy(built["CDP_PUBLICATION"], publication)
    env = {**built, "CDP_WAREHOUSE": str(warehouse), "CDP_PUBLICATION": str(publication),
           "CDP_ACTIVATION_DIR": str(tmp_path / "activation"),
           "CDP_SERVING_SNAPSHOT": str(tmp_path / "serving.duckdb"),
           "CDP_RUN_LOG": str(tmp_path / "cdp-run.log")}
    reader = duckdb.connect(str(publication), read_only=True)
    try:
        first_published = reader.execute("select published_at from _publication").fetchone()[0]
        customers = reader.execute("select count(*) from customers").fetchone()[0]
        assert customers > 0

        result = run_cli(env, "run")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

        # the open reader still answers, from the file it opened
        assert reader.execute("select count(*) from customers").fetchone()[0] == customers
        assert reader.execute("select published_at from _publication").fetchone()[0] \
            == first_published
    finally:
        reader.close()
    fresh = duckdb.connect(str(publication), read_only=True)
    try:
        assert fresh.execute("select published_at from _publication").fetchone()[0] \
            > first_published
        assert fresh.execute("select count(*) from customer_predictions").fetchone()[0] > 0
    finally:
        fresh.close()


def test_materialize_whole_graph_with_dbt_tests_as_asset_checks(
        sample_pipeline_run: dict[str, str]) -> None:
    """The whole `cdp_full_pipeline` job as the shared `cdp run` executed it, read back from the
    event log of its Dagster instance (one run of the whole graph serves every test here)."""
    with dg.DagsterInstance.from_config(sample_pipeline_run["DAGSTER_HOME"]) as instance:
        (run,) = instance.get_runs()
        events = [entry.dagster_event for entry in instance.all_logs(run.run_id)
                  if entry.dagster_event is not None]
    assert run.job_name == "cdp_full_pipeline"
    assert run.status == dg.DagsterRunStatus.SUCCESS
    materialized = {e.asset_key for e in events
                    if e.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION}
    assert dg.AssetKey(["customers"]) in materialized
    assert dg.AssetKey(["raw", "shop_orders"]) in materialized
    checks = [e.event_specific_data for e in events
              if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION]
    assert checks, "dbt tests should surface as asset checks"
    failed = [c.check_name for c in checks
              if not c.passed and c.severity == dg.AssetCheckSeverity.ERROR]
    assert not failed


def test_publication_holds_no_crm_or_loyalty_id_in_clear(built: dict[str, str]) -> None:
    """Record ids that are identifiers (docs/security.md) are hashed on the real sample run."""
    con = duckdb.connect(built["CDP_WAREHOUSE"], read_only=True)
    try:
        ids = [r[0] for r in con.execute(
            "select contact_id from raw.crm_contacts where contact_id is not null union "
            "select loyalty_id from raw.loyalty_members where loyalty_id is not null").fetchall()]
        in_marts = con.execute("select count(*) from main_marts.customer_events "
                               "where source in ('crm_contacts', 'loyalty_members')").fetchone()[0]
    finally:
        con.close()
    assert ids and in_marts > 0  # the sample has such records, so the check below can fail
    publication = duckdb.connect(built["CDP_PUBLICATION"], read_only=True)
    try:
        publication.execute("create temp table leaked_ids as select unnest(?) as id", [ids])
        columns = publication.execute(
            "select table_name, column_name from information_schema.columns "
            "where table_catalog = current_database() and table_schema = 'main' "
            "and data_type = 'VARCHAR'").fetchall()
        leaks = {}
        for table, column in columns:
            found = publication.execute(
                f'select count(*) from main."{table}" as t join leaked_ids '
                f'on t."{column}" = leaked_ids.id or ends_with(t."{column}", \':\' || leaked_ids.id)'
            ).fetchone()[0]
            if found:
                leaks[f"{table}.{column}"] = found
    finally:
        publication.close()
    assert leaks == {}
