"""Discounted CLV from BG/NBD purchases and Gamma-Gamma spend, and the per-customer predictions."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pandas as pd

from orchestration.ltv import bgnbd, gamma_gamma
from orchestration.ltv.bgnbd import BgNbdFit
from orchestration.ltv.gamma_gamma import GammaGammaFit

DAYS_PER_YEAR = 365.0
DAYS_PER_MONTH = DAYS_PER_YEAR / 12.0


def discount_per_day(
    annual_discount_rate: float | None = None, monthly_discount_rate: float | None = None
) -> float:
    """Continuous daily discount factor from an annual or a monthly (365/12 days) rate; 1 for neither."""
    if annual_discount_rate is not None and monthly_discount_rate is not None:
        raise ValueError("give annual_discount_rate or monthly_discount_rate, not both")
    rate, days = (
        (annual_discount_rate, DAYS_PER_YEAR)
        if monthly_discount_rate is None
        else (monthly_discount_rate, DAYS_PER_MONTH)
    )
    if rate is None:
        return 1.0
    if not math.isfinite(rate) or rate <= -1.0:
        raise ValueError(f"discount rate must be finite and above -100%, got {rate!r}")
    return (1.0 + rate) ** (-1.0 / days)


def discounted_clv(
    bgnbd_fit: BgNbdFit,
    expected_spend: npt.ArrayLike,
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    T: npt.ArrayLike,
    *,
    horizon: float,
    period_days: float = DAYS_PER_MONTH,
    day_discount: float = 1.0,
) -> npt.NDArray[np.float64]:
    """Sum over periods of expected purchases in the period x expected spend x discount at its end.

    `horizon` is in the BG/NBD time unit; periods are `period_days` long (the last one may be
    shorter) and each is discounted by `day_discount ** days_to_period_end`.
    """
    _, _, discounted_purchases = _purchase_outlook(
        bgnbd_fit, frequency, recency, T, horizon, period_days, day_discount
    )
    return discounted_purchases * np.asarray(expected_spend, dtype=np.float64)


def _purchase_outlook(
    bgnbd_fit: BgNbdFit,
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    T: npt.ArrayLike,
    horizon: float,
    period_days: float,
    day_discount: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(p_alive, expected purchases over the horizon, their discounted sum by period)."""
    if not math.isfinite(horizon) or horizon < 0:
        raise ValueError(f"horizon must be finite and non-negative, got {horizon!r}")
    if not math.isfinite(period_days) or period_days <= 0:
        raise ValueError(f"period_days must be positive, got {period_days!r}")
    x, t_x, t = bgnbd.validate_rft(frequency, recency, T)
    r, alpha, a, b = bgnbd._params_array(bgnbd_fit)
    p_alive = bgnbd.probability_alive(bgnbd_fit, x, t_x, t)
    unit = bgnbd_fit.time_unit_days
    period = period_days / unit
    n_periods = max(1, math.ceil(horizon / period - 1e-9))
    ends = np.minimum(np.arange(1, n_periods + 1) * period, horizon)
    discounted = np.zeros_like(x)
    previous = np.zeros_like(x)
    for end in ends:
        cumulative = p_alive * bgnbd._purchases_if_alive(r, alpha, a, b, end, x, t)
        discounted += (cumulative - previous) * day_discount ** (end * unit)
        previous = cumulative
    return p_alive, previous, discounted


def predict(
    bgnbd_fit: BgNbdFit,
    gamma_gamma_fit: GammaGammaFit,
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    T: npt.ArrayLike,
    monetary_value: npt.ArrayLike,
    *,
    horizon: float,
    annual_discount_rate: float | None = None,
    monthly_discount_rate: float | None = None,
    period_days: float = DAYS_PER_MONTH,
    time_unit_days: float | None = None,
) -> pd.DataFrame:
    """p_alive, expected_purchases and clv over `horizon` (model time units), expected_order_value.

    One row per customer, indexed like `frequency` when it is a Series. `clv` is the discounted
    expected revenue (purchases per period x expected order value); `time_unit_days`, when given,
    must match the BG/NBD fit's (a guard against mixing days and weeks).
    """
    if time_unit_days is not None and not math.isclose(time_unit_days, bgnbd_fit.time_unit_days):
        raise ValueError(
            f"time_unit_days {time_unit_days} differs from the BG/NBD fit's {bgnbd_fit.time_unit_days}"
        )
    day_discount = discount_per_day(annual_discount_rate, monthly_discount_rate)
    spend = gamma_gamma.expected_average_spend(gamma_gamma_fit, frequency, monetary_value)
    p_alive, purchases, discounted_purchases = _purchase_outlook(
        bgnbd_fit, frequency, recency, T, horizon, period_days, day_discount
    )
    index = frequency.index if isinstance(frequency, pd.Series) else None
    return pd.DataFrame(
        {
            "p_alive": p_alive,
            "expected_purchases": purchases,
            "expected_order_value": spend,
            "clv": discounted_purchases * spend,
        },
        index=index,
    )
