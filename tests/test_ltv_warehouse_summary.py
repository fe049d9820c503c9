"""The engine-side RFM summary equals the pandas `rfm_summary` (DuckDB file, real PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from orchestration.ltv.summary import rfm_summary
from orchestration.ltv.warehouse_summary import rfm_summary_on
from orchestration.warehouse import open_warehouse
from tools.purchase_histories import simulate_transactions

AS_OF_AT = dt.datetime(2025, 1, 1)  # exclusive: the purchases up to the end of 2024-12-31
RELATION = "cdp_test.transactions"


def purchases() -> pd.DataFrame:
    """Simulated histories plus the edges: two purchases on one day, one at the last microsecond
    before the bound, one exactly on it (left out), a customer whose only purchase is after it."""
    frame = simulate_transactions(200, seed=4)[["customer_id", "transacted_at", "amount"]]
    frame["transacted_at"] = frame["transacted_at"].dt.floor("us")
    edges = pd.DataFrame({
        "customer_id": ["e1", "e1", "e1", "e2", "e2", "late"],
        "transacted_at": pd.to_datetime([
            "2024-03-01 09:00", "2024-03-01 18:30", "2024-12-31 23:59:59.999999",
            "2024-06-01 00:00", "2025-01-01 00:00", "2025-01-02 10:00"], format="ISO8601"),
        "amount": [10.0, 5.5, 7.25, 3.0, 100.0, 9.0],
    })
    return pd.concat([frame, edges], ignore_index=True)


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_engine_summary_equals_the_pandas_summary(engine: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  request: pytest.FixtureRequest) -> None:
    if engine == "postgres":
        server = request.getfixturevalue("postgres_server")
        for key, value in server.fresh_database("ltv_summary").items():
            monkeypatch.setenv(key, value)
    frame = purchases()
    wh = open_warehouse(engine, tmp_path / "warehouse.duckdb")
    try:
        wh.replace_table(RELATION, frame)
        summary = rfm_summary_on(wh, RELATION, AS_OF_AT, time_unit_days=7)
    finally:
        wh.close()
    expected = rfm_summary(frame, "customer_id", "transacted_at", "amount",
                           as_of=dt.date(2024, 12, 31), time_unit_days=7)
    assert list(summary.index) == sorted(expected.index) and "late" not in summary.index
    expected = expected.loc[summary.index]
    assert (summary["frequency"] == expected["frequency"]).all()
    for column in ("recency", "T", "monetary_value"):
        np.testing.assert_allclose(summary[column], expected[column], rtol=1e-12, atol=1e-9,
                                   err_msg=column)
    # e1: two purchase days (the same-day pair is one purchase of 15.5), the last one counted
    assert summary.loc["e1", "frequency"] == 1 and summary.loc["e1", "monetary_value"] == 7.25
    assert summary.loc["e2", "frequency"] == 0  # the purchase on the bound is not before it
    assert summary.attrs == {"time_unit_days": 7.0, "as_of": "2024-12-31"}


def test_a_time_unit_that_is_not_positive_is_refused(tmp_path: Path) -> None:
    wh = open_warehouse("duckdb", tmp_path / "warehouse.duckdb")
    try:
        with pytest.raises(ValueError, match="time_unit_days"):
            rfm_summary_on(wh, RELATION, AS_OF_AT, time_unit_days=0)
    finally:
        wh.close()
