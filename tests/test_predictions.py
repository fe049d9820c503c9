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
from orchestration.predictions import (KEYS, PREDICTION_ASSETS, PredictionsConfig, as_of_bound,
                                       transactions_relation)
from orchestration.warehouse import WAREHOUSE_POOL, WarehouseResource
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
