"""Failure isolation: a broken or impossible predictions step degrades, the rest of the run goes on,
and `cdp run`'s summary and exit code say what happened (real Dagster runs on the sample data)."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration import cli, predictions
from orchestration.run_report import RunTracker, progress_logger, step_dependencies

pytestmark = pytest.mark.slow

PREDICTIONS_CHECK = "predictions/customer_predictions predictions_refreshed"


def paths_env(root: Path, landing: Path) -> dict[str, str]:
    return {
        "CDP_LANDING_DIR": str(landing),
        "CDP_WAREHOUSE": str(root / "warehouse.duckdb"),
        "CDP_PUBLICATION": str(root / "publication.duckdb"),
        "CDP_ACTIVATION_DIR": str(root / "activation"),
        "CDP_SERVING_SNAPSHOT": str(root / "serving.duckdb"),
        "CDP_RUN_LOG": str(root / "cdp-run.log"),
        "CDP_DBT_TARGET": "duckdb",
    }


@pytest.fixture(scope="module")
def baseline(sample_pipeline_run: dict[str, str]) -> Path:
    """One good run of the whole job (the session's shared `cdp run`, tests/conftest.py: it
    asserts exit code 0); each test works on a copy of its warehouse."""
    root = Path(sample_pipeline_run["CDP_WAREHOUSE"]).parent
    assert paths_env(root, Path(sample_pipeline_run["CDP_LANDING_DIR"])) == {
        key: sample_pipeline_run[key] for key in paths_env(root, root)}  # the same files
    return root


@pytest.fixture
def rerun_env(baseline: Path, tmp_path: Path, sample_landing: Path,
              monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the baseline warehouse (and activation state) as the target of the next run."""
    shutil.copy(baseline / "warehouse.duckdb", tmp_path / "warehouse.duckdb")
    if (baseline / "activation").is_dir():  # absent when the syncs' URLs were resolved earlier
        shutil.copytree(baseline / "activation", tmp_path / "activation")
    for key, value in paths_env(tmp_path, sample_landing).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CDP_AS_OF", raising=False)
    return tmp_path / "warehouse.duckdb"


def predictions_state(warehouse: Path) -> tuple:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(
            "select count(*), max(as_of_at), sum(predicted_clv_365d), sum(churn_risk) "
            "from predictions.customer_predictions").fetchone()


def sync_runs_since(warehouse: Path, since: dt.datetime) -> set[str]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("select sync_name from activation.activation_sync_runs "
                           "where started_at >= ? and status = 'success'", [since]).fetchall()
    return {name for (name,) in rows}


def test_failing_predictions_keep_the_last_good_table_and_the_rest_of_the_run_goes_on(
    rerun_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = predictions_state(rerun_env)

    def broken_fit(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected: BG/NBD fit did not converge")

    monkeypatch.setattr(predictions, "fit_ltv", broken_fit)
    started = dt.datetime.now(dt.UTC)
    report = cli.execute_with_report(dg.DagsterInstance.ephemeral())

    # the failure is reported and the exit code asks for attention
    assert report.exit_code == 1
    assert [c.label for c in report.failed_checks] == [PREDICTIONS_CHECK]
    assert "injected: BG/NBD fit did not converge" in report.failed_checks[0].figure
    assert "ERROR    " + PREDICTIONS_CHECK in capsys.readouterr().err
    # every step ran: profiles, the dbt models after the predictions, publication, syncs
    assert not report.by_status("failed") and not report.by_status("not run")
    for asset in ("customers", "int_customer_predictions", "segment_memberships",
                  "customer_features", "bi_publication", "activation/customers_to_files",
                  "activation/advertising_audience_google"):
        assert asset in report.materialised, asset
    assert sync_runs_since(rerun_env, started) == {"customers_to_files",
                                                   "advertising_audience_google"}
    # the previous predictions stay, and the dbt models downstream read them
    assert predictions_state(rerun_env) == before
    with duckdb.connect(str(rerun_env), read_only=True) as con:
        downstream = con.execute("select count(*), max(as_of_at) from "
                                 "main_intermediate.int_customer_predictions").fetchone()
    assert downstream == (before[0], before[1])


def test_nothing_to_fit_warns_keeps_the_table_and_exits_zero(
    rerun_env: Path, sample_landing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The order and POS exports stop (their raw rows purged, no new files): profiles still
    refresh, predictions have nothing to fit, which warns and keeps the last good table. A
    failing warning-level GX check (unmatched share, limit lowered) is listed with its figure."""
    purchases = ("shop_orders", "shop_order_lines", "pos_transactions")
    landing = tmp_path / "landing"
    shutil.copytree(sample_landing, landing,
                    ignore=lambda _dir, names: [n for n in names if n.split(".")[0] in purchases])
    with duckdb.connect(str(rerun_env)) as con:
        for table in purchases:
            con.execute(f"delete from raw.{table}")
    before = predictions_state(rerun_env)
    monkeypatch.setenv("CDP_LANDING_DIR", str(landing))
    monkeypatch.setenv("CDP_QUALITY_PROFILE_COUNT_CHANGE", "1")  # buyers-only profiles go
    monkeypatch.setenv("CDP_QUALITY_MAX_UNMATCHED_SHARE", "0.001")
    report = cli.execute_with_report(dg.DagsterInstance.ephemeral())

    assert report.exit_code == 0, report.render()
    assert not report.by_status("failed") and not report.by_status("not run")
    assert {"customers", "segment_memberships", "activation/customers_to_files"} \
        <= report.materialised
    warnings = {c.label: c.figure for c in report.warning_checks}
    assert "no purchases before" in warnings[PREDICTIONS_CHECK]
    assert predictions_state(rerun_env) == before
    assert str(before[1]) in warnings[PREDICTIONS_CHECK]  # names the predictions it kept
    unmatched = warnings["customer_source_records gx_unmatched_share"]
    assert re.search(r"\w+ \d+\.\d % unmatched > 0\.1 %", unmatched), unmatched
    rendered = report.render()
    assert "WARN     customer_source_records gx_unmatched_share: " + unmatched in rendered
    assert "pipeline succeeded with warnings" in rendered


def test_report_names_what_did_not_run_and_why(tmp_path: Path) -> None:
    """A failing step stops only its descendants; the summary says which and exits 1."""
    @dg.asset
    def upstream() -> None:
        raise ValueError("bad row 7 in orders.csv: amount")

    @dg.asset(deps=[upstream])
    def downstream() -> None:
        pass

    @dg.asset
    def independent() -> None:
        pass

    job = dg.Definitions(assets=[upstream, downstream, independent],
                         jobs=[dg.define_asset_job("j", executor_def=dg.in_process_executor)]
                         ).resolve_job_def("j")
    dependencies = step_dependencies(job)
    tracker = RunTracker(total_steps=len(dependencies))
    result = job.with_logger_defs({"progress": progress_logger(tracker)}).execute_in_process(
        raise_on_error=False, run_config={"loggers": {"progress": {}}})
    report = tracker.report(result.run_id, dependencies)
    status = {s.key: (s.status, s.reason) for s in report.steps}
    assert status["independent"] == ("succeeded", "")
    assert status["upstream"][0] == "failed"
    assert "bad row 7 in orders.csv: amount" in status["upstream"][1]
    assert status["downstream"] == ("not run", "upstream upstream did not succeed")
    assert report.exit_code == 1
    assert "NOT RUN  downstream: upstream upstream did not succeed" in report.render()


def test_bad_configuration_exits_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CDP_LANDING_DIR", str(tmp_path / "landing"))
    monkeypatch.setenv("CDP_AS_OF", "yesterday")
    assert cli.main(["run"]) == 2
    monkeypatch.delenv("CDP_AS_OF")
    assert cli.main(["run"]) == 2  # no landing folder


def test_summary_shows_kpis_segment_sizes_and_what_each_sync_sent(baseline: Path) -> None:
    warehouse = baseline / "warehouse.duckdb"
    text = cli.summarise(warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        segments = con.execute("select segment_name, member_count from main_marts.segments"
                               ).fetchall()
        syncs = con.execute("select sync_name, rows_sent, rows_acknowledged "
                            "from activation.activation_sync_runs").fetchall()
        kpi_date, profiles = con.execute(
            "select kpi_date, cast(kpi_value as integer) from main_marts.cdp_kpis "
            "where kpi_name = 'profiles' order by kpi_date desc limit 1").fetchone()
    assert f"KPIs on {kpi_date}:" in text
    assert re.search(rf"\n  profiles +{profiles:,}\n", text)
    assert segments and syncs
    for name, members in segments:
        assert re.search(rf"\n  {name} +{members:,}\n", text), name
    for name, sent, acknowledged in syncs:
        assert re.search(rf"\n  {name} +success: sent {sent:,} .*acknowledged {acknowledged:,}",
                         text), name
    assert text.index("Syncs (last run):") < text.index("Tables:")


def test_first_run_with_nothing_to_fit_leaves_an_empty_table_the_dbt_source_can_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No previous predictions and no purchases: an empty table with the source's columns, so
    int_customer_predictions builds (on nothing) instead of failing on a missing relation."""
    from orchestration.warehouse import WarehouseResource

    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema main_intermediate")
        con.execute("create table main_intermediate.int_transactions_attributed (customer_id "
                    "varchar, transacted_at timestamp, amount decimal(18, 2), channel varchar)")
    monkeypatch.setenv("CDP_AS_OF", "2026-10-31")
    result = dg.materialize(predictions.PREDICTION_ASSETS,
                            resources={"warehouse": WarehouseResource(path=str(warehouse))})
    assert result.success
    (check,) = [c for c in result.get_asset_check_evaluations()
                if c.check_name == predictions.REFRESH_CHECK]
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert "no previous predictions" in check.description
    with duckdb.connect(str(warehouse), read_only=True) as con:
        columns = [c for (c,) in con.execute(
            "select column_name from information_schema.columns where table_schema = "
            "'predictions' and table_name = 'customer_predictions' order by ordinal_position"
        ).fetchall()]
        assert con.execute("select count(*) from predictions.customer_predictions"
                           ).fetchone()[0] == 0
    assert columns == predictions.source_columns()
    assert {"customer_id", "as_of_at", "predicted_clv_365d", "churn_risk"} <= set(columns)


def test_summary_on_a_postgres_target_names_the_target_tables(
        baseline: Path, postgres_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The baseline warehouse's tables in a fresh PostgreSQL database: `cdp summary` on the
    postgres target reads them there (same KPIs, syncs and row counts as on DuckDB) and opens
    no DuckDB file."""
    from contextlib import closing

    from engine_support.copy_warehouse import copy_tables
    from orchestration.warehouse import open_warehouse

    on_duckdb = cli.summarise(baseline / "warehouse.duckdb", target="duckdb")
    for key, value in postgres_server.fresh_database("summary").items():
        monkeypatch.setenv(key, value)
    with closing(open_warehouse("postgres")) as pg:
        copy_tables(baseline / "warehouse.duckdb", pg)
    absent = tmp_path / "no_warehouse" / "warehouse.duckdb"
    monkeypatch.setenv("CDP_DBT_TARGET", "postgres")
    monkeypatch.setenv("CDP_WAREHOUSE", str(absent))

    text = cli.summarise()

    assert text.startswith("Warehouse: dbt target postgres")
    body = text[text.index("\n\n"):text.index("Look at it:")]
    # the same lines, dbt's schemas named as on PostgreSQL (public_marts for main_marts)
    as_duckdb = re.sub(r"^  public(_\w+)?:$", lambda m: f"  main{m.group(1) or ''}:", body,
                       flags=re.M)
    expected = on_duckdb[on_duckdb.index("\n\n"):on_duckdb.index("Look at it:")]
    assert sorted(as_duckdb.splitlines()) == sorted(expected.splitlines())
    assert re.search(r"\n  public_marts:\n(    .*\n)*    customers +\d[\d,]* rows\n", text)
    assert "Syncs (last run):" in text and "KPIs on " in text
    assert not absent.exists() and not absent.parent.exists()
