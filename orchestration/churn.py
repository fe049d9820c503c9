"""Supervised churn model: point-in-time purchase features, out-of-time training and evaluation.

Label: a customer who purchased before the cut-off "churns" when they make no purchase in the
`horizon_days` after it. The model is trained at an earlier cut-off and evaluated at a later one
whose label window ends at the as-of date (out of time), then refitted on the later cut-off to
score every customer at the as-of date. Features mirror the purchase columns of the dbt model
`customer_features` (docs/features.md) over the same windows (dbt var `features.windows_days`) and
purchases (int_transactions_attributed), but are computed here at any cut-off: dbt computes them
only as of the as-of date, and training needs them at two earlier cut-offs, so these point-in-time
window features have no dbt twin to read (tests/test_catalog.py checks that both agree at the
as-of date).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import brier_score_loss, roc_auc_score
from threadpoolctl import threadpool_limits

from orchestration.catalog import dbt_var
from orchestration.warehouse.base import Warehouse

MODEL_VERSION = "churn-hgb-1"
# One OpenMP thread per fit: on these sizes (thousands of rows) threads gain little, and on a busy
# machine (the Dagster run shares its cores with dbt) spinning OpenMP threads made one
# gradient-boosting fit 30x slower (measured: 30 s instead of 1 s, load 14 on 2 cores).
FIT_THREADS = 1


def fit_threads() -> threadpool_limits:
    """The thread limit every model fit and prediction runs under (`with fit_threads(): ...`)."""
    return threadpool_limits(limits=FIT_THREADS, user_api="openmp")


def windows_days() -> tuple[int, ...]:
    """The feature windows of dbt var `features.windows_days` (also customer_features columns)."""
    return tuple(int(days) for days in dbt_var("features.windows_days"))


def feature_columns() -> tuple[str, ...]:
    """The model's inputs, in order."""
    windows = windows_days()
    return (
        "days_since_last_purchase",
        "days_since_first_purchase",
        "orders_total",
        "revenue_total",
        *(f"orders_{d}d" for d in windows),
        *(f"revenue_{d}d" for d in windows),
        "avg_order_value",
        "online_order_share",
        "mean_days_between_orders",
    )


def features_at(
    wh: Warehouse, transactions: str, cutoff: dt.datetime, horizon_days: int | None,
    before: dt.datetime | None = None,
) -> pd.DataFrame:
    """Features of every customer with a purchase before `cutoff` (exclusive), and the churn label.

    `transactions` is a relation with customer_id, transacted_at, amount, channel; only its rows
    before `before` (default: no bound) count. With `horizon_days`, `churned` is 1 when the
    customer made no purchase in [cutoff, cutoff + horizon). The engine aggregates (portable SQL,
    one pass, window bounds computed here); the day differences are taken here from the
    timestamps it returns, in whole seconds, so every engine gives the same numbers.
    """
    frame = wh.query(features_sql(wh, transactions, horizon_days is not None, before is not None),
                     feature_params(cutoff, horizon_days, before))
    frame = frame.sort_values("customer_id", kind="stable").reset_index(drop=True)
    first_at, last_at = _whole_seconds(frame.pop("first_at")), _whole_seconds(frame.pop("last_at"))
    cutoff_at = pd.Timestamp(cutoff)
    orders = frame["orders_total"].astype("float64")
    frame["days_since_last_purchase"] = (cutoff_at - last_at).dt.total_seconds() / 86400.0
    frame["days_since_first_purchase"] = (cutoff_at - first_at).dt.total_seconds() / 86400.0
    frame["avg_order_value"] = frame["revenue_total"].astype("float64") / orders
    frame["online_order_share"] = frame.pop("online_orders").astype("float64") / orders
    frame["mean_days_between_orders"] = ((last_at - first_at).dt.total_seconds() / 86400.0
                                         / (orders - 1)).where(orders > 1)
    if horizon_days is None:
        frame["churned"] = pd.Series(pd.NA, index=frame.index, dtype="Int64")
    else:
        frame["churned"] = 1 - frame.pop("bought_in_horizon").astype("int64")
    for column in feature_columns():
        frame[column] = frame[column].astype("float64")
    return frame[["customer_id", *feature_columns(), "churned"]]


def feature_params(cutoff: dt.datetime, horizon_days: int | None,
                   before: dt.datetime | None) -> dict[str, dt.datetime]:
    """The SQL parameters: the cut-off, each window's start, the label window's end."""
    params = {"cutoff": cutoff, **{f"since_{d}": cutoff - dt.timedelta(days=d)
                                   for d in windows_days()}}
    if horizon_days is not None:
        params["horizon_end"] = cutoff + dt.timedelta(days=int(horizon_days))
    if before is not None:
        params["before"] = before
    return params


def features_sql(wh: Warehouse, transactions: str, labelled: bool, bounded: bool) -> str:
    """One aggregation per customer in SQL DuckDB, PostgreSQL and Spark share (no FILTER, no
    interval arithmetic: the window bounds are parameters)."""
    double = wh.sql_type("double")
    past = "transacted_at < %(cutoff)s"
    windows = "".join(
        f"            sum(case when {past} and transacted_at >= %(since_{d})s then 1 else 0 end)"
        f" as orders_{d}d,\n"
        f"            sum(case when {past} and transacted_at >= %(since_{d})s then amount else 0 end)"
        f" as revenue_{d}d,\n"
        for d in windows_days())
    label = ("max(case when transacted_at >= %(cutoff)s and transacted_at < %(horizon_end)s "
             "then 1 else 0 end)" if labelled else "0")
    bound = "where transacted_at < %(before)s" if bounded else ""
    return f"""
        with purchases as (
            select customer_id, transacted_at, cast(amount as {double}) as amount, channel
            from {transactions}
            {bound}
        )
        select
            customer_id,
            min(transacted_at) as first_at,
            max(case when {past} then transacted_at end) as last_at,
            sum(case when {past} then 1 else 0 end) as orders_total,
            sum(case when {past} then amount else 0 end) as revenue_total,
{windows}            sum(case when {past} and channel = 'online' then 1 else 0 end) as online_orders,
            {label} as bought_in_horizon
        from purchases
        group by customer_id
        having sum(case when {past} then 1 else 0 end) > 0
    """


def _whole_seconds(values: pd.Series) -> pd.Series:
    """Timestamps as naive UTC, truncated to the second (what a difference in seconds counts)."""
    stamps = pd.to_datetime(values, utc=True).dt.tz_localize(None)
    return stamps.dt.floor("s")


def top_decile_lift(y_true: np.ndarray, score: np.ndarray) -> float:
    """Churn rate among the 10% highest scores divided by the overall churn rate."""
    base_rate = float(np.mean(y_true))
    if base_rate == 0:
        return float("nan")
    top = np.argsort(-score, kind="stable")[: max(1, int(np.ceil(len(score) * 0.1)))]
    return float(np.mean(y_true[top]) / base_rate)


def calibration_table(y_true: np.ndarray, score: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Mean predicted vs observed churn rate per score decile (equal-count bins)."""
    frame = pd.DataFrame({"y": y_true, "p": score})
    frame["bin"] = pd.qcut(frame["p"].rank(method="first"), q=min(bins, len(frame)), labels=False)
    table = frame.groupby("bin").agg(
        n_customers=("y", "size"), mean_predicted=("p", "mean"), observed_rate=("y", "mean"))
    return table.reset_index().rename(columns={"bin": "score_decile"}).assign(
        score_decile=lambda t: t["score_decile"].astype(int) + 1)


@dataclass
class ChurnEvaluation:
    train_cutoff: dt.datetime
    test_cutoff: dt.datetime
    horizon_days: int
    n_train: int
    n_test: int
    train_churn_rate: float
    test_churn_rate: float
    auc: float
    brier: float
    top_decile_lift: float
    calibration: pd.DataFrame = field(repr=False)

    def metrics(self) -> dict[str, float]:
        return {
            "auc": self.auc,
            "brier": self.brier,
            "top_decile_lift": self.top_decile_lift,
            "n_train": float(self.n_train),
            "n_test": float(self.n_test),
            "train_churn_rate": self.train_churn_rate,
            "test_churn_rate": self.test_churn_rate,
        }


def new_model(seed: int = 0) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        max_iter=150, learning_rate=0.08, max_leaf_nodes=31, min_samples_leaf=40,
        l2_regularization=1.0, random_state=seed)


def _fit(frame: pd.DataFrame, seed: int) -> HistGradientBoostingClassifier | float:
    """A fitted model, or the constant churn rate when the labels have one class only."""
    y = frame["churned"].to_numpy()
    if len(np.unique(y)) < 2:
        return float(y.mean()) if len(y) else 0.5
    with fit_threads():
        return new_model(seed).fit(frame[list(feature_columns())].to_numpy(), y)


def predict(model: HistGradientBoostingClassifier | float, frame: pd.DataFrame) -> np.ndarray:
    if isinstance(model, float):
        return np.full(len(frame), model)
    with fit_threads():
        return model.predict_proba(frame[list(feature_columns())].to_numpy())[:, 1]


def train_evaluate_score(
    wh: Warehouse, transactions: str, as_of_at: dt.datetime, horizon_days: int,
    seed: int = 0,
) -> tuple[ChurnEvaluation, pd.DataFrame]:
    """Out-of-time evaluation, then churn risk per customer at `as_of_at`.

    Train cut-off: as_of_at - 2 * horizon (labels end at as_of_at - horizon); test cut-off:
    as_of_at - horizon (labels end at as_of_at). The scoring model is refitted on the test
    cut-off, the most recent fully labelled one. Returns (evaluation, customer_id + churn_risk).
    """
    test_cutoff = as_of_at - dt.timedelta(days=horizon_days)
    train_cutoff = test_cutoff - dt.timedelta(days=horizon_days)
    # Only purchases before the as-of bound exist for the model, labels included.
    train = features_at(wh, transactions, train_cutoff, horizon_days, before=as_of_at)
    test = features_at(wh, transactions, test_cutoff, horizon_days, before=as_of_at)
    y_test = test["churned"].to_numpy()
    score = predict(_fit(train, seed), test)
    both_classes = len(np.unique(y_test)) == 2
    evaluation = ChurnEvaluation(
        train_cutoff=train_cutoff,
        test_cutoff=test_cutoff,
        horizon_days=horizon_days,
        n_train=len(train),
        n_test=len(test),
        train_churn_rate=float(train["churned"].mean()) if len(train) else float("nan"),
        test_churn_rate=float(y_test.mean()) if len(test) else float("nan"),
        auc=float(roc_auc_score(y_test, score)) if both_classes else float("nan"),
        brier=float(brier_score_loss(y_test, score)) if len(test) else float("nan"),
        top_decile_lift=top_decile_lift(y_test, score) if len(test) else float("nan"),
        calibration=calibration_table(y_test, score) if len(test) else pd.DataFrame(),
    )
    current = features_at(wh, transactions, as_of_at, None, before=as_of_at)
    scores = pd.DataFrame({
        "customer_id": current["customer_id"],
        "churn_risk": predict(_fit(test, seed), current) if len(current) else [],
    })
    return evaluation, scores
