"""The RFM summary of `summary.rfm_summary`, aggregated by the warehouse engine in portable SQL."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from orchestration.warehouse.base import Warehouse


def purchase_days_sql(wh: Warehouse, transactions: str) -> str:
    """Per customer: first and last purchase day, number of purchase days, total value and the
    value of the first day, from the purchases before %(as_of)s. SQL DuckDB, PostgreSQL and Spark
    share: a calendar day is `cast(transacted_at as date)` (session time zone UTC). Amounts are
    summed as decimals: exact, so the sums do not depend on the order a parallel aggregation adds
    them in (a double sum did, and moved a borderline Gamma-Gamma fit from run to run)."""
    return f"""
        with purchases as (
            select
                customer_id,
                cast(transacted_at as date) as purchase_day,
                cast(amount as decimal(38, 4)) as amount
            from {transactions}
            where transacted_at < %(as_of)s
        ),
        purchase_days as (
            select customer_id, purchase_day, sum(amount) as day_value
            from purchases
            group by customer_id, purchase_day
        ),
        with_first_day as (
            select
                customer_id,
                purchase_day,
                day_value,
                min(purchase_day) over (partition by customer_id) as first_day
            from purchase_days
        )
        select
            customer_id,
            min(purchase_day) as first_day,
            max(purchase_day) as last_day,
            count(*) as purchase_days,
            sum(day_value) as total_value,
            sum(case when purchase_day = first_day then day_value else 0 end) as first_day_value
        from with_first_day
        group by customer_id
    """


def rfm_summary_on(wh: Warehouse, transactions: str, as_of_at: dt.datetime,
                   time_unit_days: float = 1.0) -> pd.DataFrame:
    """`rfm_summary` of the purchases in `transactions` before `as_of_at` (exclusive), computed
    on the engine: one row per customer comes back, not one per purchase.

    The same frame as `rfm_summary(..., as_of=<the day before as_of_at's end>)`: index
    customer_id (sorted), frequency, recency, T, monetary_value, attrs time_unit_days and as_of.
    """
    if not np.isfinite(time_unit_days) or time_unit_days <= 0:
        raise ValueError(f"time_unit_days must be a positive number of days, got {time_unit_days!r}")
    # The purchases counted are those before the exclusive bound: up to and including its day
    # before, or its own day when the bound is not midnight.
    as_of_day = pd.Timestamp((as_of_at - dt.timedelta(microseconds=1)).date())
    days = wh.query(purchase_days_sql(wh, transactions), {"as_of": as_of_at})
    days["customer_id"] = days["customer_id"].astype(str)
    days = days.sort_values("customer_id", kind="stable").set_index("customer_id")
    first_day = pd.to_datetime(days["first_day"])
    last_day = pd.to_datetime(days["last_day"])
    frequency = days["purchase_days"].astype(np.int64) - 1
    one_day = pd.Timedelta(days=1)
    summary = pd.DataFrame({
        "frequency": frequency,
        "recency": (last_day - first_day) / one_day / time_unit_days,
        "T": (as_of_day - first_day) / one_day / time_unit_days,
    }, index=days.index)
    repeat_total = days["total_value"].astype("float64") - days["first_day_value"].astype("float64")
    summary["monetary_value"] = np.where(frequency > 0, repeat_total / frequency.clip(lower=1), 0.0)
    summary.attrs["time_unit_days"] = float(time_unit_days)
    summary.attrs["as_of"] = as_of_day.date().isoformat()
    return summary
