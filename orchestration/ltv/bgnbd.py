"""BG/NBD purchase model (Fader, Hardie & Lee 2005): maximum-likelihood fit, predictions, simulation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import special

from orchestration.ltv.fitting import (
    FitError,
    FloatArray,
    as_float_array,
    check_finite_non_negative,
    maximise,
    wsum,
)

PARAMETERS = ("r", "alpha", "a", "b")

ArrayLike = npt.ArrayLike


@dataclass(frozen=True)
class BgNbdFit:
    """Fitted BG/NBD model; `params` are in `time_unit_days` units (alpha and rates scale with it)."""

    params: dict[str, float]
    log_likelihood: float
    n_customers: int
    time_unit_days: float
    converged: bool
    iterations: int
    message: str


def validate_rft(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Check (frequency, recency, T) arrays and return them as float arrays; raise FitError if bad."""
    x, t_x, t = as_float_array(frequency), as_float_array(recency), as_float_array(T)
    if not (len(x) == len(t_x) == len(t)):
        raise FitError(
            f"frequency, recency and T must have the same length (got {len(x)}, {len(t_x)}, {len(t)})"
        )
    if len(x) == 0:
        raise FitError("no customers: frequency, recency and T are empty")
    check_finite_non_negative(frequency=x, recency=t_x, T=t)
    if np.any(x != np.round(x)):
        raise FitError("frequency must hold whole numbers of repeat purchases")
    if np.any(t_x > t):
        raise FitError(f"recency exceeds T for {int(np.sum(t_x > t))} customers")
    if np.any((x == 0) & (t_x != 0)):
        raise FitError("recency must be 0 for customers with frequency 0")
    return x, t_x, t


def log_likelihood(
    params: dict[str, float], frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> FloatArray:
    """Log-likelihood of each customer's (frequency, recency, T) under BG/NBD `params` (paper eq. 6)."""
    x, t_x, t = validate_rft(frequency, recency, T)
    r, alpha, a, b = (float(params[name]) for name in PARAMETERS)
    common = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha) - special.betaln(a, b)
    alive = special.betaln(a, b + x) - (r + x) * np.log(alpha + t)
    dropped = np.full_like(x, -np.inf)
    repeat = x > 0
    dropped[repeat] = special.betaln(a + 1.0, b + x[repeat] - 1.0) - (r + x[repeat]) * np.log(
        alpha + t_x[repeat]
    )
    return common + np.logaddexp(alive, dropped)


class _Objective:
    """Negative mean log-likelihood and its analytic gradient in log-parameters, for fixed data.

    Terms that depend only on x are computed once per distinct x. Customers without a repeat
    purchase only carry the "alive at T" branch, which involves r and alpha alone; repeat customers
    are processed in cache-sized chunks.
    """

    CHUNK = 1 << 16

    def __init__(self, x: FloatArray, t_x: FloatArray, t: FloatArray, weights: FloatArray | None):
        self.total = float(len(x) if weights is None else weights.sum())
        self.x_unique, inverse = np.unique(x, return_inverse=True)
        self.n_by_x = np.bincount(inverse, weights=weights, minlength=len(self.x_unique)).astype(float)
        zero = x == 0
        self.t0 = t[zero]
        self.w0 = None if weights is None else weights[zero]
        repeat = ~zero
        self.x1, self.t_x1, self.t1 = x[repeat], t_x[repeat], t[repeat]
        self.w1 = None if weights is None else weights[repeat]
        self.inverse1 = inverse[repeat]

    def __call__(self, log_params: FloatArray) -> tuple[float, FloatArray]:
        r, alpha, a, b = np.exp(log_params)
        xu, n_by_x = self.x_unique, self.n_by_x
        psi = special.digamma
        repeat = xu > 0
        x_rep = np.where(repeat, xu, 1.0)  # placeholder 1 for x = 0 keeps b + x - 1 valid
        log_beta_ab = special.betaln(a, b)
        stay = special.betaln(a, b + xu) - log_beta_ab
        drop_minus_stay = np.where(
            repeat, special.betaln(a + 1.0, b + x_rep - 1.0) - log_beta_ab - stay, 0.0
        )
        psi_ab = psi(a + b)
        psi_abx = psi(a + b + xu)
        d_stay_a = psi_ab - psi_abx
        d_stay_b = psi(b + xu) - psi_abx - psi(b) + psi_ab
        d_drop_a = np.where(repeat, psi(a + 1.0) - psi_abx - psi(a) + psi_ab, 0.0)
        d_drop_b = np.where(repeat, psi(b + x_rep - 1.0) - psi_abx - psi(b) + psi_ab, 0.0)

        # Every customer: Gamma(r + x) alpha^r / Gamma(r) and the alive-at-T beta ratio.
        ll = wsum(n_by_x, special.gammaln(r + xu) - special.gammaln(r) + r * np.log(alpha))
        ll += wsum(n_by_x, stay)
        d_r = wsum(n_by_x, psi(r + xu) - psi(r) + np.log(alpha))
        d_alpha = self.total * r / alpha

        # No repeat purchase: likelihood (alpha + T)^-r.
        if len(self.t0):
            log_alpha_t = np.log(alpha + self.t0)
            ll -= r * wsum(self.w0, log_alpha_t)
            d_r -= wsum(self.w0, log_alpha_t)
            d_alpha -= r * wsum(self.w0, 1.0 / (alpha + self.t0))

        # Repeat customers: alive at T, or dropped out just after the last purchase at t_x.
        w3_by_x = np.zeros_like(xu)
        for lo in range(0, len(self.x1), self.CHUNK):
            part = slice(lo, lo + self.CHUNK)
            x, t_x, t, inv = self.x1[part], self.t_x1[part], self.t1[part], self.inverse1[part]
            w = None if self.w1 is None else self.w1[part]
            rx = r + x
            log_alpha_t = np.log(alpha + t)
            log_alpha_tx = np.log(alpha + t_x)
            gap = log_alpha_tx - log_alpha_t
            # log of (drop branch / alive branch); w3 = share of the drop branch.
            log_odds = drop_minus_stay[inv] - rx * gap
            w3 = special.expit(log_odds)
            ll += wsum(w, np.logaddexp(0.0, log_odds) - rx * log_alpha_t)
            w3_by_x += np.bincount(inv, weights=w3 if w is None else w * w3, minlength=len(xu))
            d_r -= wsum(w, log_alpha_t + w3 * gap)
            inv_t = 1.0 / (alpha + t)
            d_alpha -= wsum(w, rx * (inv_t + w3 * (1.0 / (alpha + t_x) - inv_t)))
        d_a = wsum(n_by_x, d_stay_a) + wsum(w3_by_x, d_drop_a - d_stay_a)
        d_b = wsum(n_by_x, d_stay_b) + wsum(w3_by_x, d_drop_b - d_stay_b)

        # Chain rule for the log-parameterisation; a mean keeps the optimiser's scale independent of n.
        grad = np.array([d_r * r, d_alpha * alpha, d_a * a, d_b * b]) / self.total
        return -ll / self.total, -grad


def fit_bgnbd(
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    *,
    time_unit_days: float | None = None,
    weights: ArrayLike | None = None,
    initial: dict[str, float] | None = None,
    raise_on_failure: bool = True,
    max_iterations: int = 2000,
) -> BgNbdFit:
    """Maximum-likelihood BG/NBD fit by L-BFGS-B on log-parameters with an analytic gradient.

    `frequency` is the number of repeat purchases, `recency` the time from first to last purchase
    and `T` the time from first purchase to the end of observation, all in one time unit
    (`time_unit_days`; taken from the `rfm_summary` frame's attrs when not given). `weights` counts
    identical customers. Raises FitError on bad input or when the optimiser does not converge,
    unless `raise_on_failure` is False (then `converged` is False).
    """
    x, t_x, t = validate_rft(frequency, recency, T)
    unit = _time_unit(time_unit_days, T)
    w = np.ones_like(x) if weights is None else as_float_array(weights)
    if len(w) != len(x) or np.any(~np.isfinite(w)) or np.any(w < 0):
        raise FitError("weights must be finite, non-negative and one per customer")
    if not np.any((x > 0) & (w > 0)):
        raise FitError("no customer has a repeat purchase: BG/NBD parameters are not identified")
    objective = _Objective(x, t_x, t, None if weights is None else w)
    if initial is None:
        # Start at r = a = b = 1 with alpha matching the mean purchase rate.
        rate = wsum(w, x) / max(wsum(w, t), 1e-12)
        initial = {"r": 1.0, "alpha": 1.0 / max(rate, 1e-12), "a": 1.0, "b": 1.0}
    params, ll, problem, iterations, message = maximise(
        "BG/NBD", objective, PARAMETERS, ("alpha",), initial, objective.total,
        max_iterations, raise_on_failure,
    )
    return BgNbdFit(
        params=params,
        log_likelihood=ll,
        n_customers=len(x) if weights is None else int(round(objective.total)),
        time_unit_days=unit,
        converged=not problem,
        iterations=iterations,
        message=message,
    )


def _time_unit(time_unit_days: float | None, source: Any) -> float:
    if time_unit_days is None:
        time_unit_days = getattr(source, "attrs", {}).get("time_unit_days", 1.0)
    unit = float(time_unit_days)  # type: ignore[arg-type]
    if not np.isfinite(unit) or unit <= 0:
        raise FitError(f"time_unit_days must be a positive number of days, got {time_unit_days!r}")
    return unit


def _params_array(model: BgNbdFit | dict[str, float]) -> tuple[float, float, float, float]:
    params = model.params if isinstance(model, BgNbdFit) else model
    r, alpha, a, b = (float(params[name]) for name in PARAMETERS)
    return r, alpha, a, b


def probability_alive(
    model: BgNbdFit | dict[str, float], frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> FloatArray:
    """P(customer still active at T | x, t_x, T); 1 for customers without a repeat purchase."""
    r, alpha, a, b = _params_array(model)
    x, t_x, t = validate_rft(frequency, recency, T)
    log_odds_dead = np.full_like(x, -np.inf)
    repeat = x > 0
    xr = x[repeat]
    log_odds_dead[repeat] = (
        np.log(a)
        - np.log(b + xr - 1.0)
        + (r + xr) * (np.log(alpha + t[repeat]) - np.log(alpha + t_x[repeat]))
    )
    return special.expit(-log_odds_dead)


def expected_purchases(
    model: BgNbdFit | dict[str, float],
    horizon: ArrayLike,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
) -> FloatArray:
    """E[purchases in (T, T + horizon] | x, t_x, T], horizon in the model's time unit.

    `horizon` is a scalar or broadcasts against the customers (e.g. shape (k, 1) for k horizons).
    """
    r, alpha, a, b = _params_array(model)
    x, t_x, t = validate_rft(frequency, recency, T)
    h = np.asarray(horizon, dtype=np.float64)
    if np.any(h < 0) or not np.all(np.isfinite(h)):
        raise ValueError("horizon must be finite and non-negative")
    p_alive = probability_alive(model, x, t_x, t)
    return p_alive * _purchases_if_alive(r, alpha, a, b, h, x, t)


def expected_purchases_new_customer(model: BgNbdFit | dict[str, float], horizon: ArrayLike) -> FloatArray:
    """E[repeat purchases in (0, horizon]] for a customer just acquired (unconditional)."""
    r, alpha, a, b = _params_array(model)
    h = np.asarray(horizon, dtype=np.float64)
    if np.any(h < 0) or not np.all(np.isfinite(h)):
        raise ValueError("horizon must be finite and non-negative")
    return _purchases_if_alive(r, alpha, a, b, h, np.zeros(1), np.zeros(1))


# Within this distance of a = 1 the closed form is 0/0; interpolate between its two sides instead
# (relative error below 1e-7 against numerical integration over p).
_A_NEAR_ONE = 1e-4


def _purchases_if_alive(
    r: float, alpha: float, a: float, b: float, h: FloatArray, x: FloatArray, t: FloatArray
) -> FloatArray:
    """E[purchases in (T, T + h] | alive at T, x]: Gaussian hypergeometric closed form of the paper."""
    if abs(a - 1.0) < _A_NEAR_ONE:
        low = _closed_form(r, alpha, 1.0 - _A_NEAR_ONE, b, h, x, t)
        high = _closed_form(r, alpha, 1.0 + _A_NEAR_ONE, b, h, x, t)
        share = (a - (1.0 - _A_NEAR_ONE)) / (2.0 * _A_NEAR_ONE)
        return low + share * (high - low)
    return _closed_form(r, alpha, a, b, h, x, t)


def _closed_form(
    r: float, alpha: float, a: float, b: float, h: FloatArray, x: FloatArray, t: FloatArray
) -> FloatArray:
    z = h / (alpha + t + h)
    log_ratio = (r + x) * (np.log(alpha + t) - np.log(alpha + t + h))
    hyper = special.hyp2f1(r + x, b + x, a + b + x - 1.0, z)
    return (a + b + x - 1.0) / (a - 1.0) * (1.0 - np.exp(log_ratio) * hyper)


def simulate_bgnbd(
    params: dict[str, float], T: ArrayLike, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Draw (frequency, recency, T) for customers observed for T each under the BG/NBD process.

    Each customer purchases at Poisson rate lambda ~ Gamma(r, rate alpha) and, after each repeat
    purchase, drops out with probability p ~ Beta(a, b). The number of purchases before dropout is
    geometric, and the time of the last observed purchase is an order statistic of uniforms.
    """
    r, alpha, a, b = (float(params[name]) for name in PARAMETERS)
    t = np.asarray(T, dtype=np.float64)
    n = len(t)
    lam = rng.gamma(shape=r, scale=1.0 / alpha, size=n)
    p = rng.beta(a, b, size=n)
    arrivals = rng.poisson(lam * t)
    last_possible = rng.geometric(p)  # repeat purchase after which the customer drops out
    x = np.minimum(arrivals, last_possible)
    recency = np.zeros(n)
    repeat = x > 0
    # The x-th of N uniform arrival times on (0, T] follows T * Beta(x, N - x + 1).
    recency[repeat] = t[repeat] * rng.beta(x[repeat], arrivals[repeat] - x[repeat] + 1)
    return x.astype(np.float64), recency, t
