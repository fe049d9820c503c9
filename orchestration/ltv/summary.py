"""Per-customer frequency, recency, T and average repeat spend from a transactions table as of a day."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

SUMMARY_COLUMNS = ("frequency", "recency", "T", "monetary_value")


def rfm_summary(
    transactions: pd.DataFrame,
    customer_col: str,
    date_col: str,
    value_col: str | None = None,
    *,
    as_of: dt.date | dt.datetime | str | pd.Timestamp,
    time_unit_days: float = 1.0,
) -> pd.DataFrame:
    """One row per customer (index `customer_col`) with the inputs of BG/NBD and Gamma-Gamma.

    Purchases are counted per calendar day: several transactions of a customer on one day are one
    purchase whose value is their sum. Only days up to and including the day of `as_of` count (a
    time of day in `as_of` is ignored); time-zone-aware dates are taken at their local wall time.

    * frequency: number of purchase days after the first one (repeat purchases);
    * recency: time from the first to the last purchase day; T: from the first purchase day to the
      `as_of` day; both in units of `time_unit_days` days (7 for weeks);
    * monetary_value: mean value of the repeat purchase days (0 without a repeat purchase), when
      `value_col` is given.

    The frame's `attrs["time_unit_days"]` records the unit, which the fits pick up.
    """
    if not np.isfinite(time_unit_days) or time_unit_days <= 0:
        raise ValueError(f"time_unit_days must be a positive number of days, got {time_unit_days!r}")
    needed = [customer_col, date_col] + ([value_col] if value_col is not None else [])
    missing = [c for c in needed if c not in transactions.columns]
    if missing:
        raise KeyError(f"transactions have no column(s) {missing}; columns are {list(transactions.columns)}")
    as_of_day = _day(pd.Series([pd.Timestamp(as_of)])).iloc[0]
    if pd.isna(as_of_day):
        raise ValueError(f"as_of must be a date, got {as_of!r}")

    frame = pd.DataFrame({"customer": transactions[customer_col], "day": _day(transactions[date_col])})
    if frame["customer"].isna().any():
        raise ValueError(f"{int(frame['customer'].isna().sum())} transactions have no {customer_col}")
    if frame["day"].isna().any():
        raise ValueError(f"{int(frame['day'].isna().sum())} transactions have no {date_col}")
    frame["value"] = 0.0 if value_col is None else pd.to_numeric(transactions[value_col]).astype(float)
    if frame["value"].isna().any():
        raise ValueError(f"{int(frame['value'].isna().sum())} transactions have no {value_col}")
    frame = frame[frame["day"] <= as_of_day]

    daily = frame.groupby(["customer", "day"], sort=True, observed=True)["value"].sum().reset_index()
    per_customer = daily.groupby("customer", sort=True, observed=True).agg(
        first_day=("day", "first"),
        last_day=("day", "last"),
        days=("day", "size"),
        total=("value", "sum"),
        first_value=("value", "first"),
    )
    frequency = per_customer["days"] - 1
    one_day = pd.Timedelta(days=1)
    summary = pd.DataFrame(
        {
            "frequency": frequency.astype(np.int64),
            "recency": (per_customer["last_day"] - per_customer["first_day"]) / one_day / time_unit_days,
            "T": (as_of_day - per_customer["first_day"]) / one_day / time_unit_days,
        },
        index=per_customer.index.rename(customer_col),
    )
    if value_col is not None:
        repeat_total = per_customer["total"] - per_customer["first_value"]
        summary["monetary_value"] = np.where(frequency > 0, repeat_total / frequency.clip(lower=1), 0.0)
    summary.attrs["time_unit_days"] = float(time_unit_days)
    summary.attrs["as_of"] = as_of_day.date().isoformat()
    return summary


def _day(values: pd.Series) -> pd.Series:
    """Calendar day (midnight, tz-naive) of each value."""
    stamps = pd.to_datetime(values)
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_localize(None)
    return stamps.dt.normalize()
