"""Gamma-Gamma spend model (Fader, Hardie & Lee 2005): maximum-likelihood fit and expected spend."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

from orchestration.ltv.fitting import (
    FitError,
    FloatArray,
    as_float_array,
    check_finite_non_negative,
    maximise,
)

PARAMETERS = ("p", "q", "gamma")


@dataclass(frozen=True)
class GammaGammaFit:
    """Fitted Gamma-Gamma model of the average value of repeat purchases (in the data's currency)."""

    params: dict[str, float]
    log_likelihood: float
    n_customers: int
    converged: bool
    iterations: int
    message: str

    @property
    def population_mean_spend(self) -> float:
        """E[Z] = p * gamma / (q - 1): the expected spend of a customer with no history (needs q > 1)."""
        p, q, g = (self.params[name] for name in PARAMETERS)
        return p * g / (q - 1.0) if q > 1.0 else float("inf")


def _validate(frequency: npt.ArrayLike, monetary_value: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    x, z = as_float_array(frequency), as_float_array(monetary_value)
    if len(x) != len(z):
        raise FitError(f"frequency and monetary_value must have the same length ({len(x)} != {len(z)})")
    check_finite_non_negative(frequency=x, monetary_value=z)
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
    """Maximum-likelihood Gamma-Gamma fit on repeat customers (frequency > 0 are used, others skipped).

    `monetary_value` is each customer's average value of repeat purchases; it must be positive for
    every customer with frequency > 0. Raises FitError on bad input or non-convergence unless
    `raise_on_failure` is False (then `converged` is False).
    """
    x_all, z_all = _validate(frequency, monetary_value)
    repeat = x_all > 0
    x, z = x_all[repeat], z_all[repeat]
    if len(x) == 0:
        raise FitError("no customer with a repeat purchase (frequency > 0): nothing to fit")
    if np.any(z <= 0):
        raise FitError(
            f"monetary_value must be positive for repeat customers; {int(np.sum(z <= 0))} are not "
            "(filter out customers whose repeat purchases net to zero or less)"
        )
    if initial is None:
        # p = q = 2 gives a population mean of 2 * gamma: match it to the mean spend.
        initial = {"p": 2.0, "q": 2.0, "gamma": float(np.mean(z)) / 2.0}
    params, ll, problem, iterations, message = maximise(
        "Gamma-Gamma", _Objective(x, z), PARAMETERS, ("gamma",), initial, len(x),
        max_iterations, raise_on_failure,
    )
    return GammaGammaFit(
        params=params,
        log_likelihood=ll,
        n_customers=len(x),
        converged=not problem,
        iterations=iterations,
        message=message,
    )


def expected_average_spend(
    model: GammaGammaFit | dict[str, float], frequency: npt.ArrayLike, monetary_value: npt.ArrayLike
) -> FloatArray:
    """E[spend per purchase | x, average spend]: a weighted mean of the population and own average.

    Customers with frequency 0 get the population mean p * gamma / (q - 1).
    """
    params = model.params if isinstance(model, GammaGammaFit) else model
    p, q, g = (float(params[name]) for name in PARAMETERS)
    if q <= 1.0:
        raise ValueError(f"expected spend is infinite when q <= 1 (q = {q:.4g})")
    x, z = _validate(frequency, monetary_value)
    z = np.where(x > 0, z, 0.0)
    return p * (g + x * z) / (p * x + q - 1.0)


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
