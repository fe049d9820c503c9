"""GX quality checks: the over-merge guard blocks every sync; profile counts vs the previous run."""

from contextlib import closing
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration import quality
from orchestration.activation.assets import build_sync_asset
from orchestration.activation.config import load_config
from orchestration.warehouse import WarehouseResource, open_warehouse

OVER_MERGE = next(c for c in quality.QUALITY_CHECKS
                  if c.check_specs and next(iter(c.check_specs)).name == "gx_over_merge_guard")


def write_customers(path: Path, hub: bool) -> None:
    """500 ordinary profiles; with `hub`, one identifier merged most of them into one profile."""
    with duckdb.connect(str(path)) as con:
        con.execute("create schema if not exists main_marts")
        con.execute("""
            create or replace table main_marts.customers as
            select 'cus_' || i as customer_id, 'p' || i || '@mail.io' as primary_email,
                '+1555000' || lpad(cast(i as varchar), 4, '0') as primary_phone,
                'A' as first_name, 'B' as last_name, null as city, null as country_code,
                3 as identifier_count
            from range(500) t(i)""")
        if hub:  # what a hub identifier does: 400 people collapse into one profile
            con.execute("delete from main_marts.customers where customer_id in "
                        "(select 'cus_' || i from range(1, 400) t(i))")
            con.execute("update main_marts.customers set identifier_count = 1200 "
                        "where customer_id = 'cus_0'")


@pytest.fixture
def warehouse(tmp_path: Path, cdp_env: dict[str, str]) -> Path:
    return Path(cdp_env["CDP_WAREHOUSE"])


def test_over_merge_guard_passes_normal_profiles_and_fails_a_hub(warehouse: Path) -> None:
    write_customers(warehouse, hub=False)
    with closing(open_warehouse("duckdb", warehouse)) as wh:
        assert quality.over_merge_guard(wh).passed
    write_customers(warehouse, hub=True)
    with closing(open_warehouse("duckdb", warehouse)) as wh:
        result = quality.over_merge_guard(wh)
    assert not result.passed
    assert result.metadata["largest_identifier_counts"].value[0] == 1200
    assert result.metadata["profiles_over_limit"].value == 1
    assert "cus_0" not in str(result.metadata)  # no customer id reaches Dagster's event log


def test_profile_count_change_is_blocking_against_previous_run(warehouse: Path) -> None:
    write_customers(warehouse, hub=False)
    with closing(open_warehouse("duckdb", warehouse)) as wh:
        assert quality.profile_count_vs_previous(wh).passed  # first run sets the baseline
    write_customers(warehouse, hub=True)  # 500 -> 101 profiles
    with closing(open_warehouse("duckdb", warehouse)) as wh:
        result = quality.profile_count_vs_previous(wh)
    assert not result.passed and result.metadata["previous_profiles"].value == 500


def test_injected_hub_blocks_every_sync(warehouse: Path) -> None:
    """In the run the sync is skipped; run on its own afterwards it refuses, naming the check."""
    hub = {"on": True}

    @dg.asset(key=dg.AssetKey(["customers"]))
    def customers() -> None:
        write_customers(warehouse, hub=hub["on"])

    config = load_config()
    syncs = [build_sync_asset(config, s) for s in config.syncs if s.is_active]
    assert syncs, "no active sync to block"
    instance = dg.DagsterInstance.ephemeral()
    resources = {"warehouse": WarehouseResource(path=str(warehouse))}

    result = dg.materialize([customers, OVER_MERGE, *syncs], instance=instance,
                            resources=resources, raise_on_error=False)
    evaluations = result.get_asset_check_evaluations()
    assert any(not e.passed and e.check_name == "gx_over_merge_guard" for e in evaluations)
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert not any(key.path[0] == "activation" for key in materialized)

    alone = dg.materialize(syncs[:1], instance=instance, resources=resources,
                           raise_on_error=False)
    assert not alone.success
    failure = next(e for e in alone.all_events if e.is_step_failure)
    assert "gx_over_merge_guard" in failure.step_failure_data.error.message

    # fixed upstream: the check passes and the sync runs again
    hub["on"] = False
    fixed = dg.materialize([customers, OVER_MERGE, *syncs[:1]], instance=instance,
                           resources=resources, raise_on_error=False)
    assert fixed.success


def test_checks_run_in_a_process_whose_main_module_has_no_file() -> None:
    """A Dagster run worker started by multiprocessing's spawn has a `__main__` without spec or
    file, as `python -c` has; pyspark (pulled in by GX) exits such a process on import."""
    import subprocess
    import sys

    code = ("import duckdb, pandas as pd\n"
            "from orchestration.quality import _great_expectations\n"
            "gx = _great_expectations()\n"
            "frame = pd.DataFrame({'customer_id': ['a', 'b', None]})\n"
            "batch = gx.get_context(mode='ephemeral').data_sources.add_pandas('p')"
            ".add_dataframe_asset('f').add_batch_definition_whole_dataframe('b')"
            ".get_batch(batch_parameters={'dataframe': frame})\n"
            "result = batch.validate(gx.expectations.ExpectColumnValuesToNotBeNull("
            "column='customer_id'))\n"
            "print('validated', result.success, result.result['unexpected_count'])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "validated False 1" in done.stdout, done.stderr[-2000:]


def test_contact_validity_accepts_what_dbt_normalize_email_accepts(tmp_path: Path) -> None:
    # Addresses the dbt rule (var email_pattern) keeps: a punycode and a unicode top-level domain.
    # The check used to hold a pattern of its own, under which these were invalid.
    from orchestration.catalog import catalog

    wh = open_warehouse("duckdb", tmp_path / "w.duckdb")
    con = wh.con
    customers = catalog().relation("customers")
    con.execute(f"create schema {customers.split('.')[0]}")
    con.execute(f"create table {customers} (primary_email varchar, primary_phone varchar)")
    con.execute(f"insert into {customers} values ('ana@shop.xn--p1ai', '+14155550134'), "
                "('bo@post.онлайн', null), ('cy@mail.io', null), ('no-at-sign', null)")
    result = quality.contact_validity(wh)
    emails = result.metadata["expectations"].value["expect_column_values_to_match_regex:primary_email"]
    assert emails["unexpected_count"] == 1  # only 'no-at-sign'
    assert "emails 75.0 % valid" in result.metadata["figure"].value


def test_unmatched_share_measures_the_linking_identity_sources_only(tmp_path: Path) -> None:
    from orchestration.catalog import catalog

    cat = catalog()
    wh = open_warehouse("duckdb", tmp_path / "w.duckdb")
    con = wh.con
    sources = cat.var("identity.sources")
    linking = [s for s in sources if s.get("links") is not False]
    lookup_only = [s for s in sources if s.get("links") is False]
    assert linking and lookup_only
    for source in (linking[0], lookup_only[0]):  # one staged record each, neither attached
        staging = cat.relation(source["model"])
        con.execute(f"create schema if not exists {staging.split('.')[0]}")
        con.execute(f"create table {staging} as select 'r1' as record_id")
    records = cat.relation("customer_source_records")
    con.execute(f"create schema if not exists {records.split('.')[0]}")
    con.execute(f"create table {records} (customer_id varchar, source varchar)")
    result = quality.unmatched_share(wh)
    assert result.metadata["unmatched_share"].value == {linking[0]["source"]: 1.0}
    assert not result.passed


def test_checks_on_a_postgres_target_agree_with_duckdb(
        sample_pipeline_run: dict[str, str], postgres_server, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The sample run's warehouse written into a fresh PostgreSQL database by an upstream asset:
    every check, run by Dagster on the postgres target, gives the verdict and figure it gives on
    the DuckDB file (customers sampled: 300 profiles > 100), and no DuckDB file is created."""
    import shutil

    from engine_support.copy_warehouse import copy_tables

    run_copy = tmp_path / "run.duckdb"
    shutil.copy(sample_pipeline_run["CDP_WAREHOUSE"], run_copy)
    for key, value in postgres_server.fresh_database("quality").items():
        monkeypatch.setenv(key, value)
    absent = tmp_path / "no_warehouse" / "warehouse.duckdb"
    monkeypatch.setenv("CDP_DBT_TARGET", "postgres")
    monkeypatch.setenv("CDP_WAREHOUSE", str(absent))
    monkeypatch.setenv("CDP_QUALITY_SAMPLE_ROWS", "100")

    @dg.multi_asset(specs=[dg.AssetSpec(quality.CUSTOMERS), dg.AssetSpec(quality.SOURCE_RECORDS),
                           dg.AssetSpec(quality.PREDICTIONS)])
    def warehouse_tables(warehouse: WarehouseResource):
        with warehouse.open() as wh:
            copy_tables(run_copy, wh)
        return None, None, None

    result = dg.materialize([warehouse_tables, *quality.QUALITY_CHECKS],
                            resources={"warehouse": WarehouseResource()}, raise_on_error=False)
    on_postgres = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert len(on_postgres) == len(quality.QUALITY_CHECKS) == 6
    bodies = {"gx_over_merge_guard": quality.over_merge_guard,
              "gx_profile_count_vs_previous_run": quality.profile_count_vs_previous,
              "gx_contact_validity": quality.contact_validity,
              "gx_unmatched_share": quality.unmatched_share,
              "gx_source_freshness": quality.source_freshness,
              "gx_clv_distribution": quality.clv_distribution}
    monkeypatch.setenv("CDP_DBT_TARGET", "duckdb")  # the expected verdicts: the file, its names
    for name, body in bodies.items():
        with closing(open_warehouse("duckdb", run_copy)) as wh:
            expected = body(wh)
        got = on_postgres[name]
        assert "cannot evaluate" not in (got.description or ""), (name, got.description)
        assert got.passed == expected.passed, name
        assert got.metadata["figure"].value == expected.metadata["figure"].value, name
    contact = on_postgres["gx_contact_validity"].metadata
    assert contact["sampled"].value is True and contact["rows_validated"].value == 100
    assert not absent.exists() and not absent.parent.exists()


def test_customer_checks_on_a_spark_target(spark_thrift_server, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The customers checks through a real Spark Thrift server: a hub fails the over-merge guard
    and the profile-count check against the count it recorded in the target; sampled
    contact validity reads 100 of 500 rows."""
    from engine_support.copy_warehouse import copy_tables

    for key, value in spark_thrift_server.env.items():
        monkeypatch.setenv(key, value)
    spark_thrift_server.drop_schemas("cdp_marts", "quality")
    monkeypatch.setenv("CDP_DBT_TARGET", "spark")
    monkeypatch.setenv("CDP_QUALITY_SAMPLE_ROWS", "100")
    hub = {"on": False}
    local = tmp_path / "customers.duckdb"

    @dg.asset(key=quality.CUSTOMERS)
    def customers(warehouse: WarehouseResource) -> None:
        local.unlink(missing_ok=True)
        write_customers(local, hub=hub["on"])
        with warehouse.open() as wh:
            copy_tables(local, wh)

    checks = [c for c in quality.QUALITY_CHECKS
              if next(iter(c.check_specs)).asset_key == quality.CUSTOMERS]
    resources = {"warehouse": WarehouseResource()}
    first = dg.materialize([customers, *checks], resources=resources, raise_on_error=False)
    passed = {e.check_name: e.passed for e in first.get_asset_check_evaluations()}
    assert passed == {"gx_over_merge_guard": True, "gx_profile_count_vs_previous_run": True,
                      "gx_contact_validity": True}, passed
    contact = next(e for e in first.get_asset_check_evaluations()
                   if e.check_name == "gx_contact_validity").metadata
    assert contact["sampled"].value is True and contact["rows_validated"].value == 100

    hub["on"] = True  # 500 -> 101 profiles, one with 1200 identifiers
    second = dg.materialize([customers, *checks], resources=resources, raise_on_error=False)
    evaluations = {e.check_name: e for e in second.get_asset_check_evaluations()}
    assert not evaluations["gx_over_merge_guard"].passed
    count = evaluations["gx_profile_count_vs_previous_run"]
    assert not count.passed and count.metadata["previous_profiles"].value == 500
