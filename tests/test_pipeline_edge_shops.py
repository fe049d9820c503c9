"""The whole pipeline on shops the sample generator never makes (issue 13): purchases without
dropout, a tiny shop, heavy refunds. Each is a real `cdp run` on shop sources only and must exit 0
with finite, documented predictions (docs/ltv-models.md, limiting cases)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from orchestration.cli import run_pipeline
from shop_landing import pipeline_env, write_shop_landing

pytestmark = pytest.mark.slow

START = dt.date(2025, 1, 1)
AS_OF = dt.date(2026, 8, 31)  # 20 months of purchases
PREDICTION_COLUMNS = ("p_alive", "expected_purchases_90d", "expected_purchases_365d",
                      "predicted_clv_90d", "predicted_clv_365d", "expected_order_value")


def lines_of(purchases: list[tuple[int, dt.date, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(purchases, columns=["customer", "day", "value"])
    frame["day"] = pd.to_datetime(frame["day"])
    frame["cds"] = 1
    frame["order_id"] = [f"edge-{i}" for i in range(1, len(frame) + 1)]
    return frame


def no_dropout(rng: np.random.Generator) -> pd.DataFrame:
    """300 customers buying every 3-6 weeks from their first day to the end: nobody leaves."""
    purchases = []
    for customer in range(300):
        day = START + dt.timedelta(days=int(rng.integers(0, 60)))
        gap = int(rng.integers(21, 43))
        while day <= AS_OF:
            purchases.append((customer, day, round(float(rng.uniform(20, 80)), 2)))
            day += dt.timedelta(days=gap + int(rng.integers(-3, 4)))
    return lines_of(purchases)


def tiny_shop(rng: np.random.Generator) -> pd.DataFrame:
    """Two customers: one came back twice, one bought once."""
    return lines_of([(1, dt.date(2025, 3, 1), 30.0), (1, dt.date(2025, 9, 1), 45.0),
                     (1, dt.date(2026, 2, 1), 25.0), (2, dt.date(2026, 5, 5), 60.0)])


def heavy_refunds(rng: np.random.Generator) -> pd.DataFrame:
    """200 customers; a third of the repeat buyers refund more than they spent again."""
    purchases = []
    for customer in range(200):
        days = sorted(START + dt.timedelta(days=int(d))
                      for d in rng.choice(600, size=int(rng.integers(1, 7)), replace=False))
        for i, day in enumerate(days):
            value = round(float(rng.uniform(10, 120)), 2)
            if i > 0 and customer % 3 == 0:
                value = -round(value * 3, 2)  # a refund booked as a negative order
            purchases.append((customer, day, value))
    return lines_of(purchases)


SHOPS: dict[str, Callable[[np.random.Generator], pd.DataFrame]] = {
    "no_dropout": no_dropout, "tiny_shop": tiny_shop, "heavy_refunds": heavy_refunds}


@pytest.mark.parametrize("shop", sorted(SHOPS))
def test_the_pipeline_succeeds_with_finite_predictions(shop: str, tmp_path: Path) -> None:
    lines = SHOPS[shop](np.random.default_rng(13))
    write_shop_landing(lines, tmp_path / "landing")
    with pipeline_env(tmp_path, AS_OF):
        assert run_pipeline() == 0
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        fits = con.execute("select model, parameter, value, fit_case "
                           "from predictions.ltv_model_fits").df()
        predictions = con.execute("select * from predictions.customer_predictions").df()
        profiles = con.execute("select count(*) from main_marts.customers").fetchone()[0]
    assert set(fits["model"]) >= {"bgnbd", "gamma_gamma"}
    assert "not_converged" not in set(fits["fit_case"])
    assert np.isfinite(fits["value"].dropna()).all()
    assert len(predictions) == profiles == lines["customer"].nunique()
    for column in PREDICTION_COLUMNS:
        assert np.isfinite(predictions[column]).all(), column
    if shop == "no_dropout":
        assert set(fits.loc[fits["model"] == "bgnbd", "fit_case"]) == {"no_dropout_limit"}
        assert (predictions["p_alive"] == 1).all()
    if shop == "heavy_refunds":
        assert (predictions["predicted_clv_365d"] >= 0).all()
