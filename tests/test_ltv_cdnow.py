"""End to end on real data: the CDNOW sample loaded as the shop sources only, `cdp run` as of
1997-09-30, the published BG/NBD parameters and the 39-week holdout (docs/ltv-models.md)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from orchestration import ltv
from orchestration.cli import run_pipeline
from orchestration.ingestion.contract import SOURCES
from shop_landing import pipeline_env, write_shop_landing

pytestmark = pytest.mark.slow

CDNOW = Path(__file__).parent / "fixtures" / "cdnow" / "CDNOW_sample.txt"
AS_OF = dt.date(1997, 9, 30)  # 39 weeks of calibration (Fader, Hardie & Lee 2005)
HOLDOUT_END = dt.date(1998, 6, 30)
HOLDOUT_WEEKS = (HOLDOUT_END - AS_OF).days / 7  # 39
PAPER_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}


def cdnow_lines() -> pd.DataFrame:
    """The sample's transaction lines with an order id per line (the file has none)."""
    frame = pd.read_csv(CDNOW, sep=r"\s+", header=None, dtype={"master_id": str, "date": str},
                        names=["master_id", "customer", "date", "cds", "value"])
    frame["order_id"] = [f"cdnow-{i}" for i in range(1, len(frame) + 1)]
    frame["day"] = pd.to_datetime(frame["date"], format="%Y%m%d")
    return frame


@pytest.fixture(scope="module")
def cdnow_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """`cdp run` (orchestration.cli.run_pipeline) on CDNOW as of 1997-09-30; the warehouse path."""
    out = tmp_path_factory.mktemp("cdnow")
    lines = cdnow_lines()
    write_shop_landing(lines, out / "landing")
    with pipeline_env(out, AS_OF):
        assert run_pipeline() == 0
    return out / "warehouse.duckdb", lines


def query(warehouse: Path, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql).df()


def test_only_the_shop_sources_were_present(cdnow_run: tuple[Path, pd.DataFrame]) -> None:
    warehouse, lines = cdnow_run
    counts = {s.name: int(query(warehouse, f"select count(*) as n from raw.{s.name}")["n"][0])
              for s in SOURCES}
    assert counts.pop("shop_orders") == counts.pop("shop_order_lines") == len(lines) == 6919
    assert set(counts.values()) == {0}


def test_bgnbd_parameters_in_ltv_model_fits_equal_the_published_ones(
        cdnow_run: tuple[Path, pd.DataFrame]) -> None:
    warehouse, _ = cdnow_run
    fits = query(warehouse, "select model, parameter, value, time_unit, n_customers, fit_case "
                            "from predictions.ltv_model_fits where model = 'bgnbd'")
    assert set(fits["fit_case"]) == {"converged"} and set(fits["time_unit"]) == {"7 days"}
    assert set(fits["n_customers"]) == {2357}
    params = dict(zip(fits["parameter"], fits["value"], strict=True))
    for name, value in PAPER_BGNBD.items():
        assert params[name] == pytest.approx(value, rel=0.01), name


def test_predicted_purchases_track_the_39_holdout_weeks(cdnow_run: tuple[Path, pd.DataFrame]) -> None:
    warehouse, lines = cdnow_run
    fits = query(warehouse, "select parameter, value from predictions.ltv_model_fits "
                            "where model = 'bgnbd'")
    model = dict(zip(fits["parameter"], fits["value"], strict=True))
    calibration = query(warehouse, "select customer_id, source_record_id as order_id, transacted_at, "
                                   "amount from main_intermediate.int_transactions_attributed")
    assert calibration["transacted_at"].max() < pd.Timestamp(AS_OF + dt.timedelta(days=1))
    # Every sample customer is one profile (no merges, no splits).
    people = calibration.merge(lines[["order_id", "customer"]], on="order_id")
    assert len(people) == len(calibration)
    pairs = people[["customer_id", "customer"]].drop_duplicates()
    assert len(pairs) == pairs["customer_id"].nunique() == pairs["customer"].nunique() == 2357

    summary = ltv.rfm_summary(calibration, "customer_id", "transacted_at", as_of=AS_OF,
                              time_unit_days=7)
    predicted = ltv.expected_purchases(model, HOLDOUT_WEEKS, summary["frequency"],
                                       summary["recency"], summary["T"])
    holdout = lines[(lines["day"] > pd.Timestamp(AS_OF)) & (lines["day"] <= pd.Timestamp(HOLDOUT_END))]
    actual = holdout.groupby("customer")["day"].nunique()  # same-day lines are one purchase
    assert actual.sum() == 1882
    assert predicted.sum() == pytest.approx(1653, rel=0.005)
    assert predicted.sum() / actual.sum() == pytest.approx(1.0, abs=0.15)
    by_customer = pd.Series(predicted, index=summary.index).rename("predicted").to_frame().join(
        pairs.set_index("customer_id")).join(actual.rename("actual"), on="customer").fillna(0)
    top = by_customer["predicted"] >= by_customer["predicted"].quantile(0.9)
    lift = by_customer.loc[top, "actual"].mean() / by_customer.loc[~top, "actual"].mean()
    assert lift > 5

    # The pipeline's own 365-day predictions are the model's, per customer.
    predictions = query(warehouse, "select customer_id, expected_purchases_365d, p_alive, "
                                   "predicted_clv_365d from predictions.customer_predictions")
    predictions = predictions.set_index("customer_id").loc[summary.index]
    np.testing.assert_allclose(
        predictions["expected_purchases_365d"],
        ltv.expected_purchases(model, 365 / 7, summary["frequency"], summary["recency"], summary["T"]),
        rtol=1e-9)
    assert np.isfinite(predictions["predicted_clv_365d"]).all()
