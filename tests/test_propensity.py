"""Purchase propensity: out of time on the real CDNOW sample, the unfittable case, the shared run."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from orchestration import propensity
from orchestration.predictions import as_of_bound
from orchestration.warehouse.duckdb_engine import DuckDBWarehouse
from tools.cdnow import cdnow_transactions

# Three months before the sample ends (1998-06-30): the 90 days after it are a holdout no fit sees.
AS_OF = dt.date(1998, 3, 31)


@pytest.fixture(scope="module")
def cdnow(tmp_path_factory: pytest.TempPathFactory) -> tuple[DuckDBWarehouse, pd.DataFrame]:
    wh = DuckDBWarehouse(tmp_path_factory.mktemp("cdnow") / "warehouse.duckdb")
    transactions = cdnow_transactions()
    wh.replace_table("main.tx", transactions)
    return wh, transactions


def test_p_purchase_90d_beats_chance_out_of_time_on_cdnow(
        cdnow: tuple[DuckDBWarehouse, pd.DataFrame]) -> None:
    wh, transactions = cdnow
    as_of_at = as_of_bound(AS_OF)
    result = propensity.train_evaluate_score(wh, "main.tx", as_of_at, 90)
    assert result.reason is None
    assert result.test_cutoff + dt.timedelta(days=90) == as_of_at
    assert result.metrics["auc"] > 0.6 and result.metrics["top_decile_lift"] > 1.5
    scores = result.scores.set_index("customer_id")["p_purchase_90d"]
    assert scores.between(0, 1).all() and len(scores) == transactions["customer_id"].nunique()
    # Calibrated: the observed purchase rate rises with the predicted one over the deciles.
    calibration = result.calibration
    assert calibration["observed_rate"].corr(calibration["mean_predicted"], "spearman") > 0.8
    # The scores at the as-of date rank the 90 days no fit has seen (the holdout).
    holdout = transactions[(transactions["transacted_at"] >= as_of_at)
                           & (transactions["transacted_at"] < as_of_at + dt.timedelta(days=90))]
    bought = scores.index.isin(holdout["customer_id"]).astype(int)
    assert roc_auc_score(bought, scores.to_numpy()) > 0.6
    rows = propensity.evaluation_rows(result)
    assert set(rows["model_version"]) == {propensity.MODEL_VERSION}
    assert rows.set_index("metric").loc["fitted", "value"] == 1.0


def test_one_class_training_set_keeps_previous_scores_and_says_why(tmp_path: Path) -> None:
    wh = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    days = pd.date_range("2024-01-01", "2024-12-31", freq="7D")
    # Everyone buys every week: every label of every cut-off is "bought", one class only.
    wh.replace_table("main.tx", pd.DataFrame({
        "customer_id": np.repeat([f"c{i}" for i in range(30)], len(days)),
        "transacted_at": np.tile(days, 30), "amount": 10.0, "channel": "store"}))
    previous = pd.DataFrame({"customer_id": ["c0", "c1"], "p_purchase_30d": [0.25, 0.75]})
    wh.replace_table("main.customer_predictions", previous)
    scores, rows, results = propensity.score_horizons(
        wh, "main.tx", "main.customer_predictions", as_of_bound(dt.date(2024, 12, 31)),
        horizons=(30, 90))
    assert all("one class only" in r.reason and "every customer bought" in r.reason
               for r in results)
    kept = scores.set_index("customer_id")
    assert kept.loc["c1", "p_purchase_30d"] == 0.75  # the last good scores stay
    assert kept["p_purchase_90d"].isna().all()  # no previous column: NULL, not made up
    assert set(rows.loc[rows["metric"] == "fitted", "value"]) == {0.0}
    _, reasons = propensity.summary(results)
    assert len(reasons) == 2 and all("kept the previous scores" in r for r in reasons)


def test_too_few_rows_is_unfittable() -> None:
    frame = pd.DataFrame({c: [1.0] * 6 for c in propensity.churn.feature_columns()})
    frame["churned"] = [0, 1, 0, 1, 0, 1]
    with pytest.raises(propensity.Unfittable, match="too few rows"):
        propensity.fit(frame, 30, dt.datetime(2024, 1, 1))


def test_shared_run_writes_propensity_columns(sample_pipeline_run: dict[str, str]) -> None:
    """The sample run's predictions, segment inputs and evaluation table carry the columns: a
    fitted horizon scores every customer in [0, 1] (an unfitted one, e.g. a shop with no purchase
    in the last 30 days, is NULL on a first run)."""
    warehouse = sample_pipeline_run["CDP_WAREHOUSE"]
    with duckdb.connect(warehouse, read_only=True) as con:
        predictions = con.execute("select * from predictions.customer_predictions").df()
        inputs = con.execute(
            "select p_purchase_30d, p_purchase_90d from main_intermediate.int_customers_segment_inputs"
            " where p_purchase_90d is not null").df()
        fitted = con.execute(
            "select horizon_days, value from predictions.churn_model_evaluation "
            "where metric = 'fitted' and model_version = ?", [propensity.MODEL_VERSION]).df()
    assert sorted(fitted["horizon_days"]) == sorted(propensity.horizons_days())
    for row in fitted.itertuples():
        scores = predictions[propensity.column(row.horizon_days)]
        if row.value == 1.0:
            assert scores.notna().all() and scores.between(0, 1).all()
    assert (fitted["value"] == 1.0).any()  # the 90-day horizon has buyers on the sample
    assert len(inputs) and all(inputs[c].dropna().between(0, 1).all() for c in inputs.columns)
