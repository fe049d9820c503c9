"""Shared maximum-likelihood machinery: input checks, bounded L-BFGS-B on log-parameters, failures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import optimize

FloatArray = npt.NDArray[np.float64]
Objective = Callable[[FloatArray], tuple[float, FloatArray]]

# Search space of the log-parameters. A shape parameter outside 1e-6..1e6 means the data do not
# identify it (e.g. no heterogeneity left to model); scale parameters get room for any time unit
# or currency.
SHAPE_LOG_BOUND = float(np.log(1e6))
SCALE_LOG_BOUND = 25.0

# An optimiser stop (line search, ABNORMAL, iteration limit) is a maximum when no component of the
# gradient of the mean log-likelihood (per customer, in log-parameters) that points into the search
# box exceeds this; a parameter within BOUND_MARGIN of the box edge is "at the bound".
GRADIENT_TOLERANCE = 1e-5
BOUND_MARGIN = 1e-3
# A shape parameter beyond 1e4 (or below 1e-4) is on its way to the edge: an optimiser stopped on
# the flat ridge towards a limit (e.g. r, alpha -> infinity together: no rate heterogeneity).
UNBOUNDED_SHAPE_LOG = float(np.log(1e4))

# Which answer a fit is (recorded in ltv_model_fits.fit_case; docs/ltv-models.md, "Limiting
# cases"); the models add their own limits (bgnbd.NO_DROPOUT_LIMIT, ...).
CONVERGED = "converged"  # a maximum of the likelihood inside the search box
BOUNDARY_LIMIT = "boundary_limit"  # a parameter ran to the box edge: the limit, at the edge value
NOT_CONVERGED = "not_converged"  # only returned with raise_on_failure=False


class FitError(ValueError):
    """A model could not be fitted: bad input, or the optimiser did not converge."""


def as_float_array(values: npt.ArrayLike) -> FloatArray:
    return np.asarray(values, dtype=np.float64).reshape(-1)


def check_finite_non_negative(**arrays: FloatArray) -> None:
    for name, array in arrays.items():
        if not np.all(np.isfinite(array)):
            raise FitError(f"{name} has {int(np.sum(~np.isfinite(array)))} missing or infinite values")
        if np.any(array < 0):
            raise FitError(f"{name} has {int(np.sum(array < 0))} negative values")


def wsum(weights: FloatArray | None, values: FloatArray) -> float:
    """Weighted sum without BLAS (a threaded BLAS dot stalls for milliseconds on a busy machine)."""
    return float(values.sum() if weights is None else np.multiply(weights, values).sum())


@dataclass(frozen=True)
class Maximum:
    """Result of `maximise`; `at_bound` names parameters at (or, shapes, beyond 1e±4 towards) the box edge."""

    params: dict[str, float]
    log_likelihood: float
    problem: str  # '' for a usable maximum
    iterations: int
    message: str
    at_bound: tuple[str, ...]
    projected_gradient: float


def maximise(
    model: str,
    objective: Objective,
    names: tuple[str, ...],
    scales: tuple[str, ...],
    initial: dict[str, float],
    n: float,
    max_iterations: int,
    raise_on_failure: bool,
) -> Maximum:
    """Minimise a negative mean log-likelihood over log-parameters with L-BFGS-B.

    An optimiser stop that is not a convergence (line search, ABNORMAL, iteration limit) is
    accepted when the projected gradient is below GRADIENT_TOLERANCE; otherwise the search is
    restarted once from where it stopped, and only then reported as a problem. Parameters at the
    edge of the search box are not a problem here: they are returned in `at_bound` for the model to
    interpret as a limiting case. Raises FitError on a problem when `raise_on_failure` is set.
    """
    bounds = [
        (-SCALE_LOG_BOUND, SCALE_LOG_BOUND) if name in scales else (-SHAPE_LOG_BOUND, SHAPE_LOG_BOUND)
        for name in names
    ]
    low, high = np.array(bounds).T
    start = np.clip(np.log([initial[name] for name in names]), low + 1.0, high - 1.0)
    result = _minimise(objective, start, bounds, max_iterations)
    iterations = int(result.nit)
    note = ""
    if not result.success and _projected_gradient(objective, result.x, low, high) > GRADIENT_TOLERANCE:
        first_message = str(result.message)
        result = _minimise(objective, result.x, bounds, max_iterations)
        iterations += int(result.nit)
        note = f"restarted after '{first_message}'; "
    gradient = _projected_gradient(objective, result.x, low, high)
    params = {name: float(np.exp(v)) for name, v in zip(names, result.x, strict=True)}
    ll = -float(result.fun) * n
    at_bound = tuple(
        name
        for name, v, lo, hi in zip(names, result.x, low, high, strict=True)
        if v <= lo + BOUND_MARGIN or v >= hi - BOUND_MARGIN
        or (name not in scales and abs(v) >= UNBOUNDED_SHAPE_LOG)
    )
    # A shape parameter at the box edge: the likelihood rises towards a limit the box cuts off;
    # what gradient is left lies along that ridge (gammaln of 1e6-sized arguments is flat to
    # rounding), so the stop is the limiting case, not a failure (one repeat customer did this).
    shape_at_edge = any(
        name not in scales and (v <= lo + BOUND_MARGIN or v >= hi - BOUND_MARGIN)
        for name, v, lo, hi in zip(names, result.x, low, high, strict=True)
    )
    problem = ""
    if not np.isfinite(ll) or not np.all(np.isfinite(result.x)):
        problem = "non-finite log-likelihood or parameters"
    elif not result.success and gradient > GRADIENT_TOLERANCE and not shape_at_edge:
        problem = f"optimiser stopped: {result.message} (projected gradient {gradient:.2g})"
    elif not result.success:
        note += f"accepted optimiser stop '{result.message}' (projected gradient {gradient:.2g})"
    if problem and raise_on_failure:
        raise FitError(f"{model} fit did not converge: {problem} (parameters {params})")
    message = problem or (note if not result.success else note + str(result.message))
    return Maximum(params, ll, problem, iterations, message, at_bound, gradient)


def _minimise(
    objective: Objective, start: FloatArray, bounds: list[tuple[float, float]], max_iterations: int
) -> optimize.OptimizeResult:
    with np.errstate(over="ignore", under="ignore"):
        return optimize.minimize(
            objective,
            start,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": max_iterations, "ftol": 1e-13, "gtol": 1e-9},
        )


def _projected_gradient(objective: Objective, x: FloatArray, low: FloatArray, high: FloatArray) -> float:
    """Largest component of the gradient that points into the search box (0 at a constrained optimum)."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        _, gradient = objective(x)
    if not np.all(np.isfinite(gradient)):
        return float("inf")
    return float(np.max(np.abs(x - np.clip(x - gradient, low, high))))
