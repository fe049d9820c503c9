"""Gamma-Gamma spend model (Fader, Hardie & Lee 2005): maximum-likelihood fit and expected spend."""

from __future__ import annotations

from dataclasses import dataclass

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
)

PARAMETERS = ("p", "q", "gamma")
# Fit case when no repeat customer has a positive average spend: no spend model, spend 0.
NO_REPEAT_SPEND = "no_repeat_spend"


@dataclass(frozen=True)
class GammaGammaFit:
    """Fitted Gamma-Gamma model of the average value of repeat purchases (in the data's currency)."""

    params: dict[str, float]
    log_likelihood: float
    n_customers: int
    converged: bool
    iterations: int
    message: str
    fit_case: str = CONVERGED
    n_excluded: int = 0  # repeat customers left out: average repeat spend <= 0 (refunds)
    mean_spend: float = float("nan")  # plain mean of the fitted customers' average spend

    @property
    def population_mean_spend(self) -> float:
        """Expected spend of a customer with no history: p * gamma / (q - 1).

        When q <= 1 that mean is infinite (a heavy tail the data allow); the plain mean of the
        fitted customers' average spend stands in. 0 without a spend model (NO_REPEAT_SPEND).
        """
        if self.fit_case == NO_REPEAT_SPEND:
            return 0.0
        p, q, g = (self.params[name] for name in PARAMETERS)
        return p * g / (q - 1.0) if q > 1.0 else self.mean_spend


def _validate(frequency: npt.ArrayLike, monetary_value: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    x, z = as_float_array(frequency), as_float_array(monetary_value)
    if len(x) != len(z):
        raise FitError(f"frequency and monetary_value must have the same length ({len(x)} != {len(z)})")
    check_finite_non_negative(frequency=x)
    if not np.all(np.isfinite(z)):
        raise FitError(f"monetary_value has {int(np.sum(~np.isfinite(z)))} missing or infinite values")
    return x, z


def log_likelihood(
    params: dict[str, float], frequency: npt.ArrayLike, monetary_value: npt.ArrayLike
) -> FloatArray:
    """Log density of each repeat customer's average spend given x purchases (x > 0, spend > 0)."""
    x, z = _validate(frequency, monetary_value)
    p, q, g = (float(params[name]) for name in PARAMETERS)
    px = p * x
    return (
        special.gammaln(px + q)
        - special.gammaln(px)
        - special.gammaln(q)
        + q * np.log(g)
        + (px - 1.0) * np.log(z)
        + px * np.log(x)
        - (px + q) * np.log(g + x * z)
    )


class _Objective:
    """Negative mean log-likelihood and its analytic gradient in log-parameters, for fixed data.

    Gamma functions depend on the customer only through x, so they are evaluated once per distinct
    x; the only per-customer work is log(gamma + x z) and its reciprocal.
    """

    def __init__(self, x: FloatArray, z: FloatArray):
        self.n = len(x)
        self.x_unique, inverse = np.unique(x, return_inverse=True)
        self.n_by_x = np.bincount(inverse, minlength=len(self.x_unique)).astype(float)
        self.x, self.xz = x, x * z
        log_z = np.log(z)
        # Parameter-free sums: sum x log z + sum x log x, and sum log z.
        self.sum_x_log_xz = float(np.sum(x * (log_z + np.log(x))))
        self.sum_log_z = float(log_z.sum())

    def __call__(self, log_params: FloatArray) -> tuple[float, FloatArray]:
        p, q, g = np.exp(log_params)
        pu = p * self.x_unique
        n, n_by_x = self.n, self.n_by_x
        log_gxz = np.log(g + self.xz)
        inv_gxz = 1.0 / (g + self.xz)
        sum_log = float(log_gxz.sum())
        sum_x_log = float(np.multiply(self.x, log_gxz).sum())
        ll = (
            float(n_by_x @ (special.gammaln(pu + q) - special.gammaln(pu)))
            - n * special.gammaln(q)
            + n * q * np.log(g)
            + p * self.sum_x_log_xz
            - self.sum_log_z
            - p * sum_x_log
            - q * sum_log
        )
        psi_puq = special.digamma(pu + q)
        d_p = float(n_by_x @ (self.x_unique * (psi_puq - special.digamma(pu))))
        d_p += self.sum_x_log_xz - sum_x_log
        d_q = float(n_by_x @ psi_puq) - n * special.digamma(q) + n * np.log(g) - sum_log
        d_g = n * q / g - p * float(np.multiply(self.x, inv_gxz).sum()) - q * float(inv_gxz.sum())
        grad = np.array([d_p * p, d_q * q, d_g * g]) / n
        return -ll / n, -grad


def fit_gamma_gamma(
    frequency: npt.ArrayLike,
    monetary_value: npt.ArrayLike,
    *,
    initial: dict[str, float] | None = None,
    raise_on_failure: bool = True,
    max_iterations: int = 2000,
) -> GammaGammaFit:
    """Maximum-likelihood Gamma-Gamma fit on the repeat customers with a positive average spend.

    `monetary_value` is each customer's average value of repeat purchases. Customers with
    frequency 0 are skipped; repeat customers whose average is 0 or less (refunds exceed their
    repeat purchases) are excluded (`n_excluded`) and get an expected spend of 0. Without any
    customer left there is no spend model (fit_case NO_REPEAT_SPEND, every spend 0). A parameter
    at the edge of the search box is reported as BOUNDARY_LIMIT (e.g. identical spend everywhere:
    p, q unbounded). Raises FitError on bad input or when the optimiser stops away from a maximum,
    unless `raise_on_failure` is False (then `converged` is False).
    """
    x_all, z_all = _validate(frequency, monetary_value)
    repeat = x_all > 0
    eligible = repeat & (z_all > 0)
    n_excluded = int(np.sum(repeat & ~eligible))
    x, z = x_all[eligible], z_all[eligible]
    excluded = (
        f"; {n_excluded} repeat customers with an average spend <= 0 excluded (expected spend 0)"
        if n_excluded else ""
    )
    if len(x) == 0:
        return GammaGammaFit(
            params={}, log_likelihood=0.0, n_customers=0, converged=True, iterations=0,
            message="no repeat customer with a positive average spend: no spend model, "
                    f"expected spend 0{excluded}",
            fit_case=NO_REPEAT_SPEND, n_excluded=n_excluded, mean_spend=0.0,
        )
    if initial is None:
        # p = q = 2 gives a population mean of 2 * gamma: match it to the mean spend.
        initial = {"p": 2.0, "q": 2.0, "gamma": float(np.mean(z)) / 2.0}
    found = maximise(
        "Gamma-Gamma", _Objective(x, z), PARAMETERS, ("gamma",), initial, len(x),
        max_iterations, raise_on_failure,
    )
    message = found.message + excluded
    if found.at_bound and not found.problem:
        message += (
            f"; {', '.join(found.at_bound)} running to the edge of the search space (the data do not "
            "identify it): its limit is reported, predictions use the edge value"
        )
    return GammaGammaFit(
        params=found.params,
        log_likelihood=found.log_likelihood,
        n_customers=len(x),
        converged=not found.problem,
        iterations=found.iterations,
        message=message,
        fit_case=NOT_CONVERGED if found.problem else BOUNDARY_LIMIT if found.at_bound else CONVERGED,
        n_excluded=n_excluded,
        mean_spend=float(np.mean(z)),
    )


def expected_average_spend(
    model: GammaGammaFit | dict[str, float], frequency: npt.ArrayLike, monetary_value: npt.ArrayLike
) -> FloatArray:
    """E[spend per purchase | x, average spend]: a weighted mean of the population and own average.

    Customers with frequency 0 get the population mean (`GammaGammaFit.population_mean_spend`);
    repeat customers whose average spend is 0 or less (net refunds) get 0, as does everyone when
    there is no spend model (NO_REPEAT_SPEND).
    """
    x, z = _validate(frequency, monetary_value)
    if isinstance(model, GammaGammaFit) and model.fit_case == NO_REPEAT_SPEND:
        return np.zeros_like(x)
    params = model.params if isinstance(model, GammaGammaFit) else model
    p, q, g = (float(params[name]) for name in PARAMETERS)
    if q <= 1.0 and not isinstance(model, GammaGammaFit) and np.any(x == 0):
        raise ValueError(f"expected spend is infinite when q <= 1 (q = {q:.4g})")
    repeat = x > 0
    spend = np.zeros_like(x)
    if isinstance(model, GammaGammaFit):
        spend[~repeat] = model.population_mean_spend
    elif q > 1.0:
        spend[~repeat] = p * g / (q - 1.0)
    positive = repeat & (z > 0)
    weight = p * x[positive] + q - 1.0  # <= 0 only for p + q < 1: then the own average stands
    spend[positive] = np.where(
        weight > 0, p * (g + x[positive] * z[positive]) / np.where(weight > 0, weight, 1.0), z[positive]
    )
    return spend


def simulate_average_spend(
    params: dict[str, float], frequency: npt.ArrayLike, rng: np.random.Generator
) -> FloatArray:
    """Draw each customer's average spend over `frequency` purchases under the Gamma-Gamma model.

    Spend per purchase is Gamma(p, rate nu) with nu ~ Gamma(q, rate gamma) per customer, so the
    average of x purchases is Gamma(p x, rate nu x). Customers with frequency 0 get 0.
    """
    p, q, g = (float(params[name]) for name in PARAMETERS)
    x = np.asarray(frequency, dtype=np.float64)
    nu = rng.gamma(shape=q, scale=1.0 / g, size=len(x))
    repeat = x > 0
    average = np.zeros(len(x))
    average[repeat] = rng.gamma(shape=p * x[repeat], scale=1.0 / (nu[repeat] * x[repeat]))
    return average
