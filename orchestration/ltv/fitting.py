"""Shared maximum-likelihood machinery: input checks, bounded L-BFGS-B on log-parameters, failures."""

from __future__ import annotations

from collections.abc import Callable

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


def maximise(
    model: str,
    objective: Objective,
    names: tuple[str, ...],
    scales: tuple[str, ...],
    initial: dict[str, float],
    n: float,
    max_iterations: int,
    raise_on_failure: bool,
) -> tuple[dict[str, float], float, str, int, str]:
    """Minimise a negative mean log-likelihood over log-parameters with L-BFGS-B.

    Returns (params, log-likelihood, problem, iterations, optimiser message); `problem` is '' for a
    usable maximum. Raises FitError when there is a problem and `raise_on_failure` is set.
    """
    bounds = [
        (-SCALE_LOG_BOUND, SCALE_LOG_BOUND) if name in scales else (-SHAPE_LOG_BOUND, SHAPE_LOG_BOUND)
        for name in names
    ]
    start = np.array([
        np.clip(np.log(initial[name]), low + 1.0, high - 1.0)
        for name, (low, high) in zip(names, bounds, strict=True)
    ])
    with np.errstate(over="ignore", under="ignore"):
        result = optimize.minimize(
            objective,
            start,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": max_iterations, "ftol": 1e-13, "gtol": 1e-9},
        )
    params = {name: float(np.exp(v)) for name, v in zip(names, result.x, strict=True)}
    ll = -float(result.fun) * n
    problem = ""
    if not result.success:
        problem = f"optimiser stopped: {result.message}"
    elif not np.isfinite(ll) or not np.all(np.isfinite(result.x)):
        problem = "non-finite log-likelihood or parameters"
    else:
        at_bound = [
            name
            for name, v, (low, high) in zip(names, result.x, bounds, strict=True)
            if v <= low + 1e-6 or v >= high - 1e-6
        ]
        if at_bound:
            problem = (
                f"{', '.join(at_bound)} ran to the edge of the search space "
                "(the data do not identify it)"
            )
    if problem and raise_on_failure:
        raise FitError(f"{model} fit did not converge: {problem} (parameters {params})")
    return params, ll, problem, int(result.nit), problem or str(result.message)
