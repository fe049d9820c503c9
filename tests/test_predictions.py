"""Churn model (out-of-time evaluation) and the predictions asset, on synthetic BG/NBD data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from orchestration import churn
from orchestration.predictions import (KEYS, PREDICTION_ASSETS, REFRESH_CHECK, PredictionsConfig,
                                       as_of_bound, predictions_schema, source_columns,
                                       transactions_relation)
from orchestration.warehouse import WAREHOUSE_POOL, WarehouseResource, open_warehouse
from orchestration.warehouse.duckdb_engine import DuckDBWarehouse
from tools.purchase_histories import simulate_transactions


AS_OF = dt.date(2024, 12, 31)


@pytest.fixture(scope="module")
def transactions() -> pd.DataFrame:
    return simulate_transactions(1500, seed=3)


def test_features_are_point_in_time_and_labels_look_ahead(tmp_path: Path) -> None:
    wh = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    frame = pd.DataFrame({
        "customer_id": ["a", "a", "a", "b"],
        "transacted_at": pd.to_datetime(["2024-01-01", "2024-06-01", "2024-07-15", "2024-08-01"]),
        "amount": [10.0, 20.0, 30.0, 5.0],
        "channel": ["online", "store", "online", "store"],
    })
    wh.replace_table("main.tx", frame)
    features = churn.features_at(wh, "main.tx", dt.datetime(2024, 7, 1), 30).set_index("customer_id")
    assert list(features.index) == ["a"]  # b had not purchased yet
    a = features.loc["a"]
    assert a["orders_total"] == 2 and a["revenue_total"] == 30  # the July purchase is in the future
    assert a["orders_30d"] == 1 and a["days_since_last_purchase"] == 30
    assert a["online_order_share"] == 0.5 and a["mean_days_between_orders"] == 152
    assert a["churned"] == 0  # bought again on 2024-07-15, within 30 days
    features = churn.features_at(wh, "main.tx", dt.datetime(2024, 7, 1), 14).set_index("customer_id")
    assert features.loc["a", "churned"] == 1  # not within 14 days


def test_lift_and_calibration() -> None:
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    score = np.linspace(1, 0, 10)
    assert churn.top_decile_lift(y, score) == pytest.approx(5.0)
    table = churn.calibration_table(y, score, bins=5)
    assert list(table["score_decile"]) == [1, 2, 3, 4, 5]
    assert table["observed_rate"].iloc[-1] == 1.0


def test_out_of_time_churn_model_beats_chance(tmp_path: Path, transactions: pd.DataFrame) -> None:
    wh = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    wh.replace_table("main.tx", transactions)
    as_of_at = as_of_bound(AS_OF)
    evaluation, scores = churn.train_evaluate_score(wh, "main.tx", as_of_at, 90)
    assert evaluation.train_cutoff < evaluation.test_cutoff < as_of_at
    assert evaluation.test_cutoff + dt.timedelta(days=90) == as_of_at
    assert evaluation.auc > 0.75
    assert evaluation.top_decile_lift > 1.1
    assert len(evaluation.calibration) == 10
    assert scores["churn_risk"].between(0, 1).all()
    assert scores["customer_id"].is_unique


def test_materialize_predictions_asset(tmp_path: Path, transactions: pd.DataFrame,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        relation = transactions_relation()
        con.execute(f"create schema {relation.split('.')[0]}")
        con.register("tx", transactions)
        con.execute(f"create table {relation} as "
                    "select *, cast(amount as decimal(18, 2)) as amount_decimal from tx")
    monkeypatch.setenv("CDP_AS_OF", AS_OF.isoformat())
    (asset,) = PREDICTION_ASSETS
    assert asset.op.pool == WAREHOUSE_POOL
    assert set(asset.keys) == set(KEYS.values())
    assert dg.AssetKey(["int_transactions_attributed"]) in asset.dependency_keys

    resources = {"warehouse": WarehouseResource(path=str(warehouse))}
    for _ in range(2):  # a re-run for the same as-of date replaces, never duplicates
        result = dg.materialize(PREDICTION_ASSETS, resources=resources, run_config=dg.RunConfig(
            {"customer_predictions": PredictionsConfig(churn_horizon_days=90)}))
        assert result.success
    metadata = {event.asset_key: event.materialization.metadata
                for event in result.get_asset_materialization_events()}
    evaluation = metadata[KEYS["churn_model_evaluation"]]
    assert evaluation["auc"].value > 0.75
    assert "bgnbd.r" in metadata[KEYS["ltv_model_fits"]]

    with duckdb.connect(str(warehouse), read_only=True) as con:
        predictions = con.execute("select * from predictions.customer_predictions").df()
        fits = con.execute("select model, parameter, count(*) as n from predictions.ltv_model_fits "
                           "group by all").df()
        metrics = con.execute("select metric from predictions.churn_model_evaluation "
                              "where score_decile is null").df()
    assert predictions["customer_id"].is_unique
    assert len(predictions) == transactions["customer_id"].nunique()
    assert predictions["p_alive"].between(0, 1).all()
    assert (predictions["predicted_clv_365d"] >= predictions["predicted_clv_90d"]).all()
    assert (predictions["expected_purchases_365d"] >= predictions["expected_purchases_90d"]).all()
    assert predictions["churn_risk"].notna().all()
    assert set(fits["parameter"]) == {"r", "alpha", "a", "b", "p", "q", "gamma"}
    assert (fits["n"] == 1).all()
    assert {"auc", "brier", "top_decile_lift"} <= set(metrics["metric"])


def test_kpi_report_asset(tmp_path: Path) -> None:
    from orchestration.kpis import KPI_ASSETS

    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema main_marts")
        con.execute("""
            create table main_marts.cdp_kpis as
            select * from (values
                (date '2024-06-01', 'profiles', 100.0), (date '2024-06-24', 'profiles', 110.0),
                (date '2024-07-01', 'profiles', 120.0), (date '2024-07-01', 'churn_rate_90d', 0.4)
            ) as t(kpi_date, kpi_name, kpi_value)""")
    result = dg.materialize(KPI_ASSETS, resources={"warehouse": WarehouseResource(path=str(warehouse))})
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["kpi/profiles"].value == 120.0
    assert metadata["kpi/churn_rate_90d"].value == 0.4
    assert "| profiles | 120.0000 | 110.0000 | 100.0000 |" in metadata["trend"].value


def _materialize(resource: WarehouseResource) -> dg.ExecuteInProcessResult:
    return dg.materialize(PREDICTION_ASSETS, resources={"warehouse": resource},
                          run_config=dg.RunConfig(
                              {"customer_predictions": PredictionsConfig(churn_horizon_days=90)}))


def _postgres_env(postgres_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                  name: str) -> Path:
    """Point the CDP at a fresh PostgreSQL database; returns the DuckDB path that must stay absent."""
    for key, value in postgres_server.fresh_database(name).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CDP_DBT_TARGET", "postgres")
    never = tmp_path / "never.duckdb"
    monkeypatch.setenv("CDP_WAREHOUSE", str(never))
    return never


@pytest.fixture(scope="module")
def duckdb_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame]:
    """300 customers' purchases and the predictions the asset writes for them on DuckDB."""
    transactions = simulate_transactions(300, seed=11)
    transactions["amount"] = transactions["amount"].round(2)
    # Microseconds: the timestamp precision every engine stores.
    transactions["transacted_at"] = transactions["transacted_at"].dt.floor("us")
    path = tmp_path_factory.mktemp("duckdb_reference") / "warehouse.duckdb"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CDP_AS_OF", AS_OF.isoformat())
        duck = open_warehouse("duckdb", path)
        duck.replace_table(transactions_relation(), transactions)
        duck.close()
        assert _materialize(WarehouseResource(path=str(path), target="duckdb")).success
    duck = open_warehouse("duckdb", path, read_only=True)
    try:
        return transactions, duck.query(f"select * from {predictions_schema()}.customer_predictions")
    finally:
        duck.close()


def _assert_same_predictions_and_one_run_per_as_of(
        wh, reference: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """Same customers and predictions (1e-6) as DuckDB; one set of fit/evaluation rows per as-of."""
    transactions, expected = reference
    schema = predictions_schema()
    actual = wh.query(f"select * from {schema}.customer_predictions")
    fits = wh.query(f"select as_of_at, model, parameter, count(*) as n from {schema}.ltv_model_fits "
                    "group by as_of_at, model, parameter")
    metrics = wh.query(f"select model_version, horizon_days, metric, score_decile, count(*) as n "
                       f"from {schema}.churn_model_evaluation "
                       "group by model_version, horizon_days, metric, score_decile")
    expected = expected.sort_values("customer_id").reset_index(drop=True)
    actual = actual.sort_values("customer_id").reset_index(drop=True)
    assert list(actual["customer_id"]) == list(expected["customer_id"])
    assert len(actual) == transactions["customer_id"].nunique()
    numeric = [c for c in expected.columns if expected[c].dtype.kind == "f"]
    assert {"p_alive", "churn_risk", "predicted_clv_365d"} <= set(numeric)
    for column in numeric:
        np.testing.assert_allclose(actual[column].astype(float), expected[column], rtol=0,
                                   atol=1e-6, err_msg=column)
    assert (pd.to_datetime(actual["as_of_at"]) == pd.Timestamp(as_of_bound(AS_OF))).all()
    assert set(fits["parameter"]) == {"r", "alpha", "a", "b", "p", "q", "gamma"}
    assert (fits["n"] == 1).all() and fits["as_of_at"].nunique() == 1
    assert (metrics["n"] == 1).all() and {"auc", "brier"} <= set(metrics["metric"])


def _materialize_twice(wh, transactions: pd.DataFrame) -> None:
    """Load the purchases, then run the asset twice for the same as-of on the target."""
    wh.replace_table(transactions_relation(), transactions)
    for _ in range(2):  # a re-run for the same as-of date replaces, never duplicates
        result = _materialize(WarehouseResource())
        assert result.success
        assert [c.passed for c in result.get_asset_check_evaluations()
                if c.check_name == REFRESH_CHECK] == [True]


def test_predictions_on_postgres_equal_duckdb(
        tmp_path: Path, postgres_server, monkeypatch: pytest.MonkeyPatch,
        duckdb_reference: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """On PostgreSQL: DuckDB's customers and predictions, one run per as-of, no DuckDB file."""
    never = _postgres_env(postgres_server, monkeypatch, tmp_path, "predictions")
    monkeypatch.setenv("CDP_AS_OF", AS_OF.isoformat())
    pg = open_warehouse("postgres")
    try:
        _materialize_twice(pg, duckdb_reference[0])
        _assert_same_predictions_and_one_run_per_as_of(pg, duckdb_reference)
    finally:
        pg.close()
    assert not never.exists()


def test_predictions_on_spark_equal_duckdb(
        tmp_path: Path, spark_thrift_server, monkeypatch: pytest.MonkeyPatch,
        duckdb_reference: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """On Spark (Thrift server): DuckDB's customers and predictions, one run per as-of, no
    DuckDB file."""
    for key, value in spark_thrift_server.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CDP_DBT_TARGET", "spark")
    never = tmp_path / "never.duckdb"
    monkeypatch.setenv("CDP_WAREHOUSE", str(never))
    monkeypatch.setenv("CDP_AS_OF", AS_OF.isoformat())
    spark_thrift_server.drop_schemas(transactions_relation().split(".")[0], predictions_schema())
    spark = open_warehouse("spark")
    try:
        _materialize_twice(spark, duckdb_reference[0])
        _assert_same_predictions_and_one_run_per_as_of(spark, duckdb_reference)
    finally:
        spark.close()
    assert not never.exists()


def test_nothing_to_fit_on_postgres_leaves_an_empty_predictions_table(
        tmp_path: Path, postgres_server, monkeypatch: pytest.MonkeyPatch) -> None:
    """No purchases before the as-of date: the check warns, the step succeeds and an empty
    customer_predictions with the source's columns stands in, in PostgreSQL."""
    never = _postgres_env(postgres_server, monkeypatch, tmp_path, "predictions_empty")
    monkeypatch.setenv("CDP_AS_OF", "2000-01-01")
    pg = open_warehouse("postgres")
    try:
        pg.replace_table(transactions_relation(), simulate_transactions(20, seed=1))
        result = _materialize(WarehouseResource())
        assert result.success
        (check,) = [c for c in result.get_asset_check_evaluations()
                    if c.check_name == REFRESH_CHECK]
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
        relation = f"{predictions_schema()}.customer_predictions"
        assert pg.columns(relation) == source_columns()
        assert pg.scalar(f"select count(*) from {relation}") == 0
    finally:
        pg.close()
    assert not never.exists()


def _overview_tables(wh) -> None:
    """Small KPI, segment, sync-run and prediction tables, the shape dbt and the assets write."""
    from orchestration.activation.state import RUNS
    from orchestration.catalog import catalog

    wh.replace_table(catalog().relation("cdp_kpis"), pd.DataFrame({
        "kpi_date": [dt.date(2024, 5, 1), dt.date(2024, 6, 1), dt.date(2024, 6, 24),
                     dt.date(2024, 7, 1), dt.date(2024, 7, 1)],
        "kpi_name": ["profiles", "profiles", "profiles", "profiles", "churn_rate_90d"],
        "kpi_value": [90.0, 100.0, 110.0, 120.0, 0.4]}))
    wh.replace_table(catalog().relation("segments"), pd.DataFrame({
        "segment_name": ["vip", "lapsed"], "member_count": [3, 12]}))
    stamps = pd.to_datetime(["2024-07-01 10:00", "2024-07-02 10:00"])
    wh.replace_table(RUNS, pd.DataFrame({
        "sync_name": ["crm", "crm"], "status": ["failed", "success"], "started_at": stamps,
        "rows_sent": [5, 7], "rows_added": [5, 2], "rows_changed": [0, 4], "rows_removed": [0, 1],
        "rows_acknowledged": [0, 6], "rows_failed": [5, 1], "error": ["boom", None]}))
    wh.replace_table(catalog().source("predictions", "customer_predictions"), pd.DataFrame({
        "customer_id": ["a", "b"], "as_of_at": pd.to_datetime(["2024-07-02", "2024-07-02"])}))


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_kpi_report_and_overview_read_the_target(engine: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 request: pytest.FixtureRequest) -> None:
    """The KPI asset's trend (60 days before the latest date) and the `cdp summary` lines come
    from the target warehouse; on postgres no DuckDB file is created."""
    from orchestration.kpis import KPI_ASSETS
    from orchestration.overview import overview

    never = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("CDP_WAREHOUSE", str(never))
    monkeypatch.setenv("CDP_DBT_TARGET", engine)
    if engine == "postgres":
        _postgres_env(request.getfixturevalue("postgres_server"), monkeypatch, tmp_path,
                      "kpi_overview")
    wh = open_warehouse(engine, never)
    try:
        _overview_tables(wh)
    finally:
        wh.close()  # one DuckDB session at a time: the asset opens its own
    result = dg.materialize(KPI_ASSETS, resources={"warehouse": WarehouseResource()})
    with WarehouseResource().open(read_only=True) as wh:
        lines = overview(wh)
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["kpi/profiles"].value == 120.0
    # 2024-05-01 is more than 60 days before the latest date: not in the trend
    assert "| profiles | 120.0000 | 110.0000 | 100.0000 |" in metadata["trend"].value
    assert lines[0] == "KPIs on 2024-07-01:"
    assert any(line.split() == ["profiles", "120"] for line in lines)
    assert any(line.split() == ["churn_rate_90d", "40.0", "%"] for line in lines)
    assert lines.index("  lapsed                                       12") < lines.index(
        "  vip                                           3")
    (crm,) = [line for line in lines if line.startswith("  crm")]
    assert "success: sent 7 (added 2, changed 4, removed 1), acknowledged 6, 1 rejected" in crm
    assert "Predictions: 2 customers, fitted on data before 2024-07-02 00:00:00" in lines
    assert never.exists() == (engine == "duckdb")
