"""Synthetic purchase histories from the BG/NBD story, for the predictions tests and benchmark.

Each customer buys at a Poisson rate (gamma-distributed across customers) and, after each repeat
purchase, drops out with a beta-distributed probability; spend per purchase is gamma around a gamma-distributed
customer mean. The truth is known, so the churn model has real signal to find.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd


def simulate_transactions(
    n_customers: int,
    seed: int = 0,
    start: dt.datetime = dt.datetime(2022, 1, 1),
    end: dt.datetime = dt.datetime(2025, 1, 1),
    max_purchases: int = 500,
) -> pd.DataFrame:
    """customer_id, transacted_at, amount, channel: the shape of int_transactions_attributed."""
    rng = np.random.default_rng(seed)
    span_days = (end - start).days
    rate = rng.gamma(shape=0.6, scale=1 / 25.0, size=n_customers)  # purchases per day
    dropout = rng.beta(1.0, 5.0, size=n_customers)
    mean_spend = rng.gamma(shape=6.0, scale=10.0, size=n_customers)
    online_share = rng.beta(2.0, 2.0, size=n_customers)
    t = rng.uniform(0, span_days - 30, size=n_customers)  # first purchase, days after start
    alive = np.ones(n_customers, dtype=bool)
    customers, days = [], []
    for purchase in range(max_purchases):
        if purchase > 0:
            t = t + rng.exponential(1.0 / rate)
            alive &= t < span_days
        idx = np.flatnonzero(alive)
        if idx.size == 0:
            break
        customers.append(idx)
        days.append(t[idx])
        if purchase > 0:  # BG/NBD: a customer can drop out after a repeat purchase only
            alive &= rng.random(n_customers) >= dropout
    customer = np.concatenate(customers)
    day = np.concatenate(days)
    amount = np.round(rng.gamma(4.0, mean_spend[customer] / 4.0), 2) + 0.01
    channel = np.where(rng.random(customer.size) < online_share[customer], "online", "store")
    frame = pd.DataFrame({
        "customer_id": pd.Series(customer).map("c{:07d}".format),
        "transacted_at": pd.Timestamp(start) + pd.to_timedelta(day, unit="D"),
        "amount": amount,
        "channel": channel,
    })
    return frame.sort_values(["customer_id", "transacted_at"], ignore_index=True)
