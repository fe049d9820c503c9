"""BG/NBD purchase model (Fader, Hardie & Lee 2005): maximum-likelihood fit, predictions, simulation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import special

from orchestration.ltv.fitting import (
    BOUNDARY_LIMIT,
    CONVERGED,
    NOT_CONVERGED,
    FitError,
    FloatArray,
    as_float_array,
    check_finite_non_negative,
    maximise,
    wsum,
)

PARAMETERS = ("r", "alpha", "a", "b")

ArrayLike = npt.ArrayLike


# Which answer a fit is, besides fitting.CONVERGED / BOUNDARY_LIMIT / NOT_CONVERGED.
NO_DROPOUT_LIMIT = "no_dropout_limit"  # dropout probability 0 for everyone: the NBD model, a = 0
NO_REPEAT_PURCHASES = "no_repeat_purchases"  # nobody bought again: purchase rate 0, r = 0

# Stand-ins for parameters a limiting case does not identify (they are not in `params` and enter
# no prediction of that case).
_UNIDENTIFIED = {"alpha": 1.0, "b": 1.0}
# The NBD (no dropout) fit replaces the BG/NBD one when it is at most this much less likely
# (total log-likelihood, plus a relative share): the data cannot tell dropout from none.
NO_DROPOUT_TOLERANCE = 1e-3
NO_DROPOUT_RELATIVE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class BgNbdFit:
    """Fitted BG/NBD model; `params` are in `time_unit_days` units (alpha and rates scale with it).

    `fit_case` says which answer it is (CONVERGED, NO_DROPOUT_LIMIT, NO_REPEAT_PURCHASES,
    BOUNDARY_LIMIT); a limiting case leaves out of `params` what it does not identify.
    """

    params: dict[str, float]
    log_likelihood: float
    n_customers: int
    time_unit_days: float
    converged: bool
    iterations: int
    message: str
    fit_case: str = CONVERGED


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
    total = float(w.sum())
    n_customers = len(x) if weights is None else int(round(total))
    if total <= 0:
        raise FitError("weights are all zero: no customer to fit")
    if not np.any((x > 0) & (w > 0)):
        return BgNbdFit(
            params={"r": 0.0, "a": 0.0}, log_likelihood=0.0, n_customers=n_customers,
            time_unit_days=unit, converged=True, iterations=0, fit_case=NO_REPEAT_PURCHASES,
            message="no customer has a repeat purchase: the likelihood (alpha/(alpha+T))^r is "
                    "maximal at purchase rate r = 0, so every customer is expected to buy 0 times "
                    "(alpha, b not identified)",
        )
    weights_or_none = None if weights is None else w
    objective = _Objective(x, t_x, t, weights_or_none)
    rate = wsum(w, x) / max(wsum(w, t), 1e-12)
    if initial is None:
        # Start at r = a = b = 1 with alpha matching the mean purchase rate.
        initial = {"r": 1.0, "alpha": 1.0 / max(rate, 1e-12), "a": 1.0, "b": 1.0}
    full = maximise(
        "BG/NBD", objective, PARAMETERS, ("alpha",), initial, total, max_iterations, False
    )
    nbd = maximise(
        "NBD", _NbdObjective(x, t, weights_or_none), ("r", "alpha"), ("alpha",),
        {"r": 1.0, "alpha": 1.0 / max(rate, 1e-12)}, total, max_iterations, False,
    )
    tolerance = NO_DROPOUT_TOLERANCE + NO_DROPOUT_RELATIVE_TOLERANCE * abs(nbd.log_likelihood)
    # A failed BG/NBD search that is more likely than the NBD maximum is a genuine failure.
    if not nbd.problem and nbd.log_likelihood >= full.log_likelihood - tolerance:
        chosen, fit_case = nbd, NO_DROPOUT_LIMIT
        params = {**nbd.params, "a": 0.0}
        message = (
            "no dropout: the BG/NBD likelihood is maximal in the limit of dropout probability 0 "
            f"(a -> 0 relative to b; the BG/NBD search reached {_rounded(full.params)}, "
            f"log-likelihood {full.log_likelihood:.6g} <= NBD {nbd.log_likelihood:.6g}); "
            "fitted the NBD model (r, alpha), b is not identified"
        )
    else:
        chosen, params = full, full.params
        fit_case = NOT_CONVERGED if full.problem else BOUNDARY_LIMIT if full.at_bound else CONVERGED
        message = full.message
    if chosen.problem:
        if raise_on_failure:
            raise FitError(
                f"BG/NBD fit did not converge: {chosen.problem} (parameters {chosen.params})"
            )
    elif chosen.at_bound:
        fit_case = BOUNDARY_LIMIT if fit_case == CONVERGED else fit_case
        message += (
            f"; {', '.join(chosen.at_bound)} running to the edge of the search space (the data do not "
            "identify it): its limit is reported, predictions use the edge value"
        )
    return BgNbdFit(
        params=params,
        log_likelihood=chosen.log_likelihood,
        n_customers=n_customers,
        time_unit_days=unit,
        converged=not chosen.problem,
        iterations=full.iterations + nbd.iterations,
        message=message,
        fit_case=fit_case,
    )


def _rounded(params: dict[str, float]) -> dict[str, float]:
    return {name: float(f"{value:.4g}") for name, value in params.items()}


class _NbdObjective:
    """Negative mean log-likelihood of the NBD model (BG/NBD without dropout) in log r, log alpha.

    Per customer: Gamma(r + x) alpha^r / (Gamma(r) (alpha + T)^(r + x)), the limit of the BG/NBD
    likelihood as the dropout probability goes to 0 (the x! of the Poisson is a constant, left out
    as in the BG/NBD likelihood). Written without cancellation so that it stays smooth when r and
    alpha run off together (no rate heterogeneity): log Gamma(r + x) - log Gamma(r) is the sum of
    log(r + k) for k < x, and r log(alpha) - r log(alpha + T) is -r log1p(T / alpha).
    """

    def __init__(self, x: FloatArray, t: FloatArray, weights: FloatArray | None):
        self.total = float(len(x) if weights is None else weights.sum())
        self.x_unique, inverse = np.unique(x, return_inverse=True)
        self.n_by_x = np.bincount(inverse, weights=weights, minlength=len(self.x_unique)).astype(float)
        self.k = np.arange(int(self.x_unique[-1]), dtype=np.float64)
        self.x, self.t, self.w = x, t, weights

    def __call__(self, log_params: FloatArray) -> tuple[float, FloatArray]:
        r, alpha = np.exp(log_params)
        xu = self.x_unique.astype(np.int64)
        log_terms = np.concatenate(([0.0], np.cumsum(np.log(r + self.k))))
        inv_terms = np.concatenate(([0.0], np.cumsum(1.0 / (r + self.k))))
        log1p_t = np.log1p(self.t / alpha)
        ll = wsum(self.n_by_x, log_terms[xu])
        ll -= wsum(self.w, r * log1p_t + self.x * np.log(alpha + self.t))
        d_r = wsum(self.n_by_x, inv_terms[xu]) - wsum(self.w, log1p_t)
        d_alpha = wsum(self.w, (r * self.t / alpha - self.x) / (alpha + self.t))
        grad = np.array([d_r * r, d_alpha * alpha]) / self.total
        return -ll / self.total, -grad


def _time_unit(time_unit_days: float | None, source: Any) -> float:
    if time_unit_days is None:
        time_unit_days = getattr(source, "attrs", {}).get("time_unit_days", 1.0)
    unit = float(time_unit_days)  # type: ignore[arg-type]
    if not np.isfinite(unit) or unit <= 0:
        raise FitError(f"time_unit_days must be a positive number of days, got {time_unit_days!r}")
    return unit


def _params_array(model: BgNbdFit | dict[str, float]) -> tuple[float, float, float, float]:
    params = model.params if isinstance(model, BgNbdFit) else model
    r, alpha, a, b = (float(params.get(name, _UNIDENTIFIED.get(name, np.nan))) for name in PARAMETERS)
    return r, alpha, a, b


def probability_alive(
    model: BgNbdFit | dict[str, float], frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> FloatArray:
    """P(customer still active at T | x, t_x, T); 1 for customers without a repeat purchase."""
    r, alpha, a, b = _params_array(model)
    x, t_x, t = validate_rft(frequency, recency, T)
    if a == 0.0:  # no dropout: everyone is alive
        return np.ones_like(x)
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
    """E[purchases in (T, T + h] | alive at T, x]: Gaussian hypergeometric closed form of the paper.

    With a = 0 (no dropout) it is the NBD's (r + x) h / (alpha + T).
    """
    no_dropout = (r + x) * h / (alpha + t)  # an upper bound: dropout only removes purchases
    if a == 0.0:
        return no_dropout
    if abs(a - 1.0) < _A_NEAR_ONE:
        low = _closed_form(r, alpha, 1.0 - _A_NEAR_ONE, b, h, x, t)
        high = _closed_form(r, alpha, 1.0 + _A_NEAR_ONE, b, h, x, t)
        share = (a - (1.0 - _A_NEAR_ONE)) / (2.0 * _A_NEAR_ONE)
        value = low + share * (high - low)
    else:
        value = _closed_form(r, alpha, a, b, h, x, t)
    value, no_dropout = np.broadcast_arrays(value, no_dropout)
    # The hypergeometric series loses all precision for extreme parameters (e.g. r and alpha at
    # the edge of the search space): there, integrate over the dropout probability instead.
    bad = ~np.isfinite(value) | (value < -1e-9 * no_dropout) | (value > no_dropout * (1 + 1e-9))
    if np.any(bad):
        value = value.copy()
        h_b, x_b, t_b = (np.broadcast_to(v, value.shape)[bad] for v in (h, x, t))
        value[bad] = _by_quadrature(r, alpha, a, b, h_b, x_b, t_b)
    return value


# Gauss-Legendre nodes on (0, 1) for integrating over the quantiles of the dropout posterior.
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(96)
_NODES, _WEIGHTS = (_NODES + 1.0) / 2.0, _WEIGHTS / 2.0


def _by_quadrature(
    r: float, alpha: float, a: float, b: float, h: FloatArray, x: FloatArray, t: FloatArray
) -> FloatArray:
    """E over p ~ Beta(a, b + x) (the alive customer's dropout posterior) of (1 - E[e^(-lambda p h)])/p.

    lambda | x ~ Gamma(r + x, alpha + T), so E[e^(-lambda p h)] = (1 + p h / (alpha + T))^-(r+x).
    Integrated over the posterior's quantiles u in (0, 1), p = I^-1(u; a, b + x), with 96
    Gauss-Legendre nodes; every step is in log space or expm1/log1p, so no term overflows.
    """
    p = special.betaincinv(a, b + x[:, None], _NODES[None, :])
    rate_h = (r + x[:, None]) * h[:, None] / (alpha + t[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        per_p = -np.expm1(-(r + x[:, None]) * np.log1p(p * h[:, None] / (alpha + t[:, None]))) / p
    per_p = np.where(p > 0, per_p, rate_h)
    return per_p @ _WEIGHTS


def _closed_form(
    r: float, alpha: float, a: float, b: float, h: FloatArray, x: FloatArray, t: FloatArray
) -> FloatArray:
    """(a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+h))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)].

    With w = 1 - z = (alpha+T)/(alpha+T+h), Euler's transformation gives
    w^(r+x) 2F1(r+x, b+x; c; z) = w^(a-1) 2F1(a+b-1-r, a-1; c; z), c = a+b+x-1. The first form's
    series converges at z -> 1 when a-1-r-x > 0, the second's when r+x+1-a > 0; each customer gets
    the form that converges, so long horizons and heavy buyers never meet a vanishing power times
    a diverging series (0 x inf = NaN).
    """
    h, x, t = np.broadcast_arrays(
        np.asarray(h, dtype=np.float64), np.asarray(x, dtype=np.float64), np.asarray(t, dtype=np.float64)
    )
    log_w = np.log(alpha + t) - np.log(alpha + t + h)
    z = -np.expm1(log_w)
    c = a + b + x - 1.0
    term = np.empty(h.shape)
    direct = a - 1.0 - r - x > 0.0
    with np.errstate(over="ignore", under="ignore"):
        term[direct] = np.exp((r + x[direct]) * log_w[direct]) * special.hyp2f1(
            r + x[direct], b + x[direct], c[direct], z[direct]
        )
        euler = ~direct
        term[euler] = np.exp((a - 1.0) * log_w[euler]) * special.hyp2f1(
            a + b - 1.0 - r, a - 1.0, c[euler], z[euler]
        )
    return c / (a - 1.0) * (1.0 - term)


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
