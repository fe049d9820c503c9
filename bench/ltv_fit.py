"""LTV model fit time and accuracy at 1M simulated customers, and agreement with the CDNOW paper estimates."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from orchestration import ltv  # noqa: E402

# Simulation truth: the paper's CDNOW estimates (weeks); customers acquired over two years.
TRUE_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
TRUE_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "gamma": 15.44}
CDNOW_SUMMARY = ROOT / "tests/fixtures/cdnow/cdnow_customers_summary_with_transactions.csv"

Data = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
Fitter = Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, float]]
SpendFitter = Callable[[np.ndarray, np.ndarray], dict[str, float]]
T = TypeVar("T")


def simulate(customers: int, seed: int) -> Data:
    rng = np.random.default_rng(seed)
    x, t_x, t = ltv.simulate_bgnbd(TRUE_BGNBD, rng.uniform(1.0, 104.0, customers), rng)
    spend = ltv.simulate_average_spend(TRUE_GAMMA_GAMMA, x, rng)
    return x, t_x, t, spend


def own() -> tuple[str, Fitter, SpendFitter]:
    def fit(x: np.ndarray, t_x: np.ndarray, t: np.ndarray) -> dict[str, float]:
        return ltv.fit_bgnbd(x, t_x, t, time_unit_days=7).params

    def fit_spend(x: np.ndarray, z: np.ndarray) -> dict[str, float]:
        return ltv.fit_gamma_gamma(x, z).params

    return "orchestration.ltv", fit, fit_spend


def lifetimes() -> tuple[str, Fitter, SpendFitter]:
    import lifetimes as lt

    def fit(x: np.ndarray, t_x: np.ndarray, t: np.ndarray) -> dict[str, float]:
        model = lt.BetaGeoFitter().fit(x, t_x, t)
        return {k: float(v) for k, v in model.params_.items()}

    def fit_spend(x: np.ndarray, z: np.ndarray) -> dict[str, float]:
        repeat = x > 0
        model = lt.GammaGammaFitter().fit(x[repeat], z[repeat])
        return {name: float(model.params_[key]) for name, key in (("p", "p"), ("q", "q"), ("gamma", "v"))}

    return f"lifetimes {lt.__version__}", fit, fit_spend


def pymc_marketing() -> tuple[str, Fitter, SpendFitter]:
    import pymc_marketing
    from pymc_extras.prior import Prior
    from pymc_marketing.clv import BetaGeoModel, GammaGammaModel

    flat = Prior("HalfFlat")  # MAP with flat priors is the maximum-likelihood estimate

    def fit(x: np.ndarray, t_x: np.ndarray, t: np.ndarray) -> dict[str, float]:
        data = pd.DataFrame({"customer_id": np.arange(len(x)), "frequency": x, "recency": t_x, "T": t})
        model = BetaGeoModel(data=data, model_config={k: flat for k in ("r", "alpha", "a", "b")})
        idata = model.fit(method="map")
        return {k: float(idata.posterior[k].values.ravel()[0]) for k in ("r", "alpha", "a", "b")}

    def fit_spend(x: np.ndarray, z: np.ndarray) -> dict[str, float]:
        repeat = x > 0
        data = pd.DataFrame({"customer_id": np.arange(int(repeat.sum())), "frequency": x[repeat],
                             "monetary_value": z[repeat]})
        idata = GammaGammaModel(data=data).fit(method="map")
        post = idata.posterior
        return {"p": float(post["p"].values.ravel()[0]), "q": float(post["q"].values.ravel()[0]),
                "gamma": float(post["v"].values.ravel()[0])}

    return f"pymc-marketing {pymc_marketing.__version__}", fit, fit_spend


def random_transactions(rows: int, customers: int, seed: int) -> pd.DataFrame:
    """Uniformly random purchases over three years, string customer ids, as the warehouse has them."""
    rng = np.random.default_rng(seed)
    ids = pd.Series([f"c{i:08d}" for i in range(customers)])
    return pd.DataFrame({
        "customer_id": ids.to_numpy()[rng.integers(0, customers, rows)],
        "transacted_at": pd.Timestamp("2022-01-01")
        + pd.to_timedelta(rng.integers(0, 3 * 365 * 86400, rows), unit="s"),
        "amount": rng.gamma(2.0, 20.0, rows),
    })


def simulate_no_dropout(customers: int, seed: int) -> Data:
    """Poisson purchases at Gamma rates and nobody drops out (the BG/NBD's a -> 0 limit)."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(1.0, 87.0, customers)
    x = rng.poisson(rng.gamma(TRUE_BGNBD["r"], 1.0 / TRUE_BGNBD["alpha"], customers) * t).astype(float)
    t_x = np.where(x > 0, t * rng.beta(np.maximum(x, 1.0), 1.0), 0.0)
    return x, t_x, t, ltv.simulate_average_spend(TRUE_GAMMA_GAMMA, x, rng)


def populations(count: int, customers: int) -> list[dict[str, object]]:
    """Fit `count` populations with shuffled rows: every third without dropout, every other one
    with 5 % of the repeat customers refunding more than their repeat purchases."""
    results = []
    for seed in range(count):
        x, t_x, t, spend = (simulate_no_dropout if seed % 3 == 1 else simulate)(customers, 100 + seed)
        rng = np.random.default_rng(seed)
        if seed % 2:
            refunders = np.flatnonzero(x > 0)[rng.random(int((x > 0).sum())) < 0.05]
            spend[refunders] = -spend[refunders]
        order = rng.permutation(customers)
        x, t_x, t, spend = x[order], t_x[order], t[order], spend[order]
        purchases, bgnbd_s = timed(lambda: ltv.fit_bgnbd(x, t_x, t, time_unit_days=7))  # noqa: B023
        spend_fit, gamma_gamma_s = timed(lambda: ltv.fit_gamma_gamma(x, spend))  # noqa: B023
        predictions = ltv.predict(purchases, spend_fit, x, t_x, t, spend, horizon=5 * 365 / 7)
        results.append({
            "seed": 100 + seed, "bgnbd_case": purchases.fit_case, "bgnbd_s": round(bgnbd_s, 2),
            "gamma_gamma_case": spend_fit.fit_case, "gamma_gamma_s": round(gamma_gamma_s, 2),
            "excluded_refunders": spend_fit.n_excluded,
            "finite_5y_predictions": bool(np.isfinite(predictions.to_numpy()).all()),
        })
    return results


LIBRARIES = {"own": own, "lifetimes": lifetimes, "pymc-marketing": pymc_marketing}
MODULES = {"own": "orchestration.ltv", "lifetimes": "lifetimes", "pymc-marketing": "pymc_marketing.clv"}


def import_seconds(module: str, repeats: int = 5) -> tuple[float, float]:
    """Median wall time to import `module` in a fresh interpreter: in total, and on top of
    numpy, scipy and pandas (which the project loads anyway)."""
    def run(preload: str) -> float:
        code = (f"{preload}import time; s = time.perf_counter(); import {module}; "
                "print(time.perf_counter() - s)")
        runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                     check=True, cwd=ROOT).stdout) for _ in range(repeats)]
        return statistics.median(runs)

    return run(""), run("import numpy, pandas, scipy.optimize, scipy.special; ")


def timed(function: Callable[..., T], *args: object) -> tuple[T, float]:
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def relative_errors(fitted: dict[str, float], truth: dict[str, float]) -> dict[str, float]:
    return {k: round(fitted[k] / truth[k] - 1.0, 4) for k in truth}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--library", choices=sorted(LIBRARIES), default="own")
    parser.add_argument("--populations", type=int, default=0,
                        help="also fit this many shuffled populations (no dropout, refunds) [own]")
    args = parser.parse_args()

    name, fit, fit_spend = LIBRARIES[args.library]()
    total, extra = import_seconds(MODULES[args.library])
    report: dict[str, object] = {"library": name, "import_s": round(total, 2),
                                 "import_beyond_numpy_scipy_pandas_s": round(extra, 2)}

    # Literature: the published CDNOW calibration summary (weeks), 2,357 customers.
    cdnow = pd.read_csv(CDNOW_SUMMARY)
    cx, ct_x, ct, cz = (cdnow[c].to_numpy(float) for c in ("x", "t_x", "T", "zbar"))
    params, seconds = timed(fit, cx, ct_x, ct)
    report["cdnow_bgnbd"] = {k: round(v, 4) for k, v in params.items()}
    # Every library's estimate scored by the same log-likelihood (paper: -9582.4).
    report["cdnow_bgnbd_ll"] = round(float(ltv.bgnbd.log_likelihood(params, cx, ct_x, ct).sum()), 2)
    report["cdnow_bgnbd_fit_s"] = round(seconds, 2)
    spend_params, seconds = timed(fit_spend, cx, cz)
    report["cdnow_gamma_gamma"] = {k: round(v, 4) for k, v in spend_params.items()}
    report["cdnow_gamma_gamma_fit_s"] = round(seconds, 2)

    # Scale: simulated customers with known parameters.
    (x, t_x, t, spend), seconds = timed(simulate, args.customers, args.seed)
    report["customers"] = args.customers
    report["repeat_customers"] = int((x > 0).sum())
    report["simulate_s"] = round(seconds, 2)
    params, seconds = timed(fit, x, t_x, t)
    report["bgnbd_fit_s"] = round(seconds, 2)
    report["bgnbd_relative_error"] = relative_errors(params, TRUE_BGNBD)
    spend_params, seconds = timed(fit_spend, x, spend)
    report["gamma_gamma_fit_s"] = round(seconds, 2)
    report["gamma_gamma_relative_error"] = relative_errors(spend_params, TRUE_GAMMA_GAMMA)

    if args.library == "own":
        bgnbd_fit = ltv.fit_bgnbd(x, t_x, t, time_unit_days=7)
        gamma_gamma_fit = ltv.fit_gamma_gamma(x, spend)
        _, seconds = timed(
            lambda: ltv.predict(bgnbd_fit, gamma_gamma_fit, x, t_x, t, spend,
                                horizon=365 / 7, monthly_discount_rate=0.01))
        report["predict_365d_monthly_clv_s"] = round(seconds, 2)
        transactions = random_transactions(3 * args.customers, args.customers, args.seed)
        summary, seconds = timed(lambda: ltv.rfm_summary(
            transactions, "customer_id", "transacted_at", "amount", as_of="2024-06-30",
            time_unit_days=7))
        report["rfm_summary_transactions"] = len(transactions)
        report["rfm_summary_customers"] = len(summary)
        report["rfm_summary_s"] = round(seconds, 2)
        if args.populations:
            report["populations"] = populations(args.populations, args.customers)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
