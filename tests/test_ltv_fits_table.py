"""`ltv_model_fits` in the warehouse: fit case columns, and a table written by an earlier release."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from orchestration.predictions import (
    PredictionsConfig,
    as_of_bound,
    build_predictions,
    write_tables,
)
from orchestration.warehouse.duckdb_engine import DuckDBWarehouse

AS_OF = dt.date(2024, 12, 31)


def transactions(customers: int = 400, seed: int = 5) -> pd.DataFrame:
    """Purchases over two years; a tenth of the customers refund more than they repeat-buy."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(customers):
        first = rng.uniform(0, 700)
        days = np.sort(first - rng.uniform(0, first, rng.poisson(2.0))) if rng.random() < 0.7 else []
        amounts = rng.gamma(3.0, 15.0, 1 + len(days))
        if i % 10 == 0 and len(days):
            amounts[1:] = -amounts[0]
        rows += [(f"c{i}", d, a) for d, a in zip([first, *days], amounts, strict=True)]
    return pd.DataFrame({
        "customer_id": [c for c, _, _ in rows],
        "transacted_at": [pd.Timestamp(AS_OF) - pd.Timedelta(days=float(d)) for _, d, _ in rows],
        "amount": [a for _, _, a in rows],
        "channel": "online",
    })


def test_fits_from_an_earlier_release_get_the_fit_case_columns(tmp_path: Path) -> None:
    as_of_at = as_of_bound(AS_OF)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("create schema main_intermediate")
        con.register("tx", transactions())
        con.execute("create table main_intermediate.int_transactions_attributed as select * from tx")
        # The table as the previous release created it, with one earlier run in it.
        con.execute("create schema predictions")
        con.execute("create table predictions.ltv_model_fits (model varchar, parameter varchar, "
                    "value double, time_unit varchar, log_likelihood double, n_customers bigint, "
                    "as_of_at timestamp, fitted_at timestamp)")
        con.execute("insert into predictions.ltv_model_fits values ('bgnbd', 'r', 0.3, '7 days', "
                    "-10.0, 5, '2024-06-30', '2024-06-30')")
    wh = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    try:
        predictions, fits, evaluation, _, _ = build_predictions(wh, as_of_at, PredictionsConfig())
        write_tables(wh, predictions, fits, evaluation)
        stored = wh.con.execute("select as_of_at, model, parameter, fit_case, fit_message "
                             "from predictions.ltv_model_fits order by as_of_at, model").df()
    finally:
        wh.close()
    earlier = stored[stored["as_of_at"] < pd.Timestamp(as_of_at)]
    assert len(earlier) == 1 and earlier["fit_case"].isna().all()
    latest = stored[stored["as_of_at"] == pd.Timestamp(as_of_at)]
    assert set(latest["model"]) == {"bgnbd", "gamma_gamma"}
    assert latest["fit_case"].notna().all() and latest["fit_message"].notna().all()
    spend = fits[fits["model"] == "gamma_gamma"]
    assert "repeat customers with an average spend <= 0 excluded" in spend["fit_message"].iloc[0]
    assert np.isfinite(predictions["predicted_clv_365d"]).all()
