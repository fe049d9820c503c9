"""Purchase propensity on the real CDNOW sample vs the BG/NBD baseline P(at least one purchase).

Scores at an as-of date three months before the sample ends (1998-03-31) and ranks the purchases
of the following 30 / 90 days, which no fit sees. Model: orchestration/propensity.py (trained at
T - 2h, refitted at T - h, scoring at T). Baseline: `lifetimes` BetaGeoFitter fitted on the
purchases before T (daily), P(at least one purchase in h days | history) = P(alive) * (1 - P(no purchase | alive)).

    .venv/bin/python bench/propensity_cdnow.py
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter
from lifetimes.utils import summary_data_from_transaction_data
from sklearn.metrics import brier_score_loss, roc_auc_score

from orchestration import churn, propensity
from orchestration.predictions import as_of_bound
from orchestration.warehouse.duckdb_engine import DuckDBWarehouse
from tools.cdnow import cdnow_transactions

AS_OF = dt.date(1998, 3, 31)


def bgnbd_p_any(tx: pd.DataFrame, as_of_at: dt.datetime, horizon_days: int) -> pd.Series:
    """lifetimes BG/NBD: P(at least one purchase in the horizon) per customer, fit before as_of_at."""
    past = tx[tx["transacted_at"] < as_of_at]
    summary = summary_data_from_transaction_data(
        past, "customer_id", "transacted_at", freq="D",
        observation_period_end=as_of_at - dt.timedelta(days=1))
    fitter = BetaGeoFitter(penalizer_coef=0.0).fit(
        summary["frequency"], summary["recency"], summary["T"])
    # BG/NBD: a purchase can only happen while alive, and dropout happens only after a purchase,
    # so P(0 in t | alive, history) = E[exp(-lambda t)] under lambda's posterior Gamma(r + x, alpha + T).
    r, alpha = fitter.params_["r"], fitter.params_["alpha"]
    p_alive = fitter.conditional_probability_alive(
        summary["frequency"], summary["recency"], summary["T"])
    rate = alpha + summary["T"]
    p_none_if_alive = (rate / (rate + horizon_days)) ** (r + summary["frequency"])
    return pd.Series(np.asarray(p_alive) * (1.0 - p_none_if_alive), index=summary.index)


def figures(bought: np.ndarray, score: np.ndarray) -> str:
    return (f"AUC {roc_auc_score(bought, score):.3f}, top-decile lift "
            f"{churn.top_decile_lift(bought, score):.2f}, Brier {brier_score_loss(bought, score):.3f}")


def main() -> int:
    tx = cdnow_transactions()
    as_of_at = as_of_bound(AS_OF)
    with tempfile.TemporaryDirectory() as folder:
        wh = DuckDBWarehouse(Path(folder) / "warehouse.duckdb")
        wh.replace_table("main.tx", tx)
        print(f"CDNOW sample: {tx['customer_id'].nunique()} customers, {len(tx)} purchases; "
              f"as of {AS_OF}")
        for horizon in (30, 90):
            start = time.perf_counter()
            result = propensity.train_evaluate_score(wh, "main.tx", as_of_at, horizon)
            seconds = time.perf_counter() - start
            scores = result.scores.set_index("customer_id")[propensity.column(horizon)]
            future = tx[(tx["transacted_at"] >= as_of_at)
                        & (tx["transacted_at"] < as_of_at + dt.timedelta(days=horizon))]
            bought = scores.index.isin(future["customer_id"]).astype(int)
            baseline = bgnbd_p_any(tx, as_of_at, horizon).reindex(scores.index)
            print(f"{horizon}d: purchase rate {bought.mean():.3f}; out-of-time evaluation at "
                  f"{result.test_cutoff:%Y-%m-%d}: AUC {result.metrics['auc']:.3f}, lift "
                  f"{result.metrics['top_decile_lift']:.2f}, Brier {result.metrics['brier']:.3f}"
                  f" ({seconds:.1f} s)")
            print(f"  holdout, p_purchase_{horizon}d: {figures(bought, scores.to_numpy())}")
            print(f"  holdout, BG/NBD P(>=1):   {figures(bought, baseline.to_numpy())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
