"""LTV library: CDNOW literature estimates, simulated recovery, predictions, RFM summary, errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, stats

from orchestration import ltv
from orchestration.ltv import bgnbd, gamma_gamma

CDNOW = Path(__file__).parent / "fixtures" / "cdnow"
CALIBRATION_END = dt.date(1997, 9, 30)
WEEK = 7.0

# Fader, Hardie & Lee (2005), Marketing Science: BG/NBD on the CDNOW sample, weeks.
PAPER_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PAPER_BGNBD_LL = -9582.4
# Fader, Hardie & Lee (2005), JMR: Gamma-Gamma on the same sample's repeat customers.
PAPER_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "gamma": 15.44}


@pytest.fixture(scope="module")
def cdnow_transactions() -> pd.DataFrame:
    frame = pd.read_csv(
        CDNOW / "CDNOW_sample.txt",
        sep=r"\s+",
        header=None,
        names=["master_id", "customer_id", "date", "cds", "value"],
        dtype={"master_id": str, "date": str},
    )
    frame["date"] = pd.to_datetime(frame["date"], format="%Y%m%d")
    return frame


@pytest.fixture(scope="module")
def cdnow_summary(cdnow_transactions: pd.DataFrame) -> pd.DataFrame:
    return ltv.rfm_summary(
        cdnow_transactions, "customer_id", "date", "value",
        as_of=CALIBRATION_END, time_unit_days=WEEK,
    )


@pytest.fixture(scope="module")
def cdnow_bgnbd(cdnow_summary: pd.DataFrame) -> ltv.BgNbdFit:
    return ltv.fit_bgnbd(cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"])


@pytest.fixture(scope="module")
def cdnow_gamma_gamma(cdnow_summary: pd.DataFrame) -> ltv.GammaGammaFit:
    return ltv.fit_gamma_gamma(cdnow_summary["frequency"], cdnow_summary["monetary_value"])


def assert_within_percent(fitted: dict[str, float], expected: dict[str, float], percent: float) -> None:
    for name, value in expected.items():
        assert fitted[name] == pytest.approx(value, rel=percent / 100), name


# --- the literature, on CDNOW -------------------------------------------------------------------


def test_summary_from_transactions_equals_published_summary(cdnow_summary: pd.DataFrame) -> None:
    published = pd.read_csv(CDNOW / "cdnow_customers_summary_with_transactions.csv", index_col="ID")
    assert len(cdnow_summary) == 2357
    assert cdnow_summary.index.tolist() == published.index.tolist()
    assert (cdnow_summary["frequency"] == published["x"]).all()
    assert (cdnow_summary["frequency"] > 0).sum() == 946
    for ours, theirs in (("recency", "t_x"), ("T", "T"), ("monetary_value", "zbar")):
        assert np.abs(cdnow_summary[ours] - published[theirs]).max() <= 0.005 + 1e-9, ours
    # The cohort's calibration period is 39 weeks: T runs from 39 weeks down to 27.
    assert cdnow_summary["T"].max() == pytest.approx(272 / 7)
    assert cdnow_summary.attrs["time_unit_days"] == WEEK


def test_bgnbd_reproduces_paper_estimates(cdnow_bgnbd: ltv.BgNbdFit) -> None:
    assert cdnow_bgnbd.converged
    assert cdnow_bgnbd.n_customers == 2357
    assert cdnow_bgnbd.time_unit_days == WEEK  # picked up from the summary's attrs
    assert_within_percent(cdnow_bgnbd.params, PAPER_BGNBD, 1.0)
    assert cdnow_bgnbd.log_likelihood == pytest.approx(PAPER_BGNBD_LL, abs=0.1)


def test_bgnbd_on_published_rounded_summary_also_matches() -> None:
    published = pd.read_csv(CDNOW / "cdnow_customers_summary_with_transactions.csv")
    fit = ltv.fit_bgnbd(published["x"], published["t_x"], published["T"], time_unit_days=WEEK)
    assert_within_percent(fit.params, PAPER_BGNBD, 1.0)
    assert fit.log_likelihood == pytest.approx(PAPER_BGNBD_LL, abs=0.1)


def test_conditional_expectation_matches_paper_example(cdnow_bgnbd: ltv.BgNbdFit) -> None:
    # The paper's worked example: x = 2, t_x = 30.43, T = 38.86 weeks -> 1.226 purchases in 39 weeks.
    expected = ltv.expected_purchases(cdnow_bgnbd, 39, [2], [30.43], [38.86])
    assert expected[0] == pytest.approx(1.226, abs=0.001)


def test_gamma_gamma_reproduces_paper_estimates(cdnow_gamma_gamma: ltv.GammaGammaFit) -> None:
    # Fitted on the 946 repeat buyers' average value of their repeat purchases.
    assert cdnow_gamma_gamma.converged
    assert cdnow_gamma_gamma.n_customers == 946
    assert_within_percent(cdnow_gamma_gamma.params, PAPER_GAMMA_GAMMA, 1.0)
    # Population mean spend p * gamma / (q - 1) is about $35.
    assert cdnow_gamma_gamma.population_mean_spend == pytest.approx(35.17, abs=0.05)


# --- numerical checks ---------------------------------------------------------------------------


def test_bgnbd_gradient_matches_finite_differences(cdnow_summary: pd.DataFrame) -> None:
    x, t_x, t = (cdnow_summary[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    weights = np.random.default_rng(0).integers(1, 4, len(x)).astype(float)
    for w in (None, weights):
        objective = bgnbd._Objective(x, t_x, t, w)
        for point in (np.log([0.24, 4.4, 0.79, 2.4]), np.zeros(4), np.log([3.0, 0.1, 5.0, 0.2])):
            error = optimize.check_grad(
                lambda p, f=objective: f(p)[0], lambda p, f=objective: f(p)[1], point
            )
            assert error < 1e-5


def test_bgnbd_objective_equals_sum_of_customer_log_likelihoods(cdnow_summary: pd.DataFrame) -> None:
    x, t_x, t = (cdnow_summary[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    params = {"r": 0.5, "alpha": 3.0, "a": 1.5, "b": 4.0}
    per_customer = bgnbd.log_likelihood(params, x, t_x, t)
    objective = bgnbd._Objective(x, t_x, t, None)
    assert -objective(np.log(list(params.values())))[0] * len(x) == pytest.approx(per_customer.sum())
    # Weights are counts of identical customers.
    counts = np.arange(len(x)) % 3 + 1.0
    weighted = bgnbd._Objective(x, t_x, t, counts)(np.zeros(4))[0]
    repeated = bgnbd._Objective(*(np.repeat(v, counts.astype(int)) for v in (x, t_x, t)), None)
    assert weighted == pytest.approx(repeated(np.zeros(4))[0])


def test_gamma_gamma_gradient_matches_finite_differences(cdnow_summary: pd.DataFrame) -> None:
    repeat = cdnow_summary[cdnow_summary["frequency"] > 0]
    x, z = repeat["frequency"].to_numpy(float), repeat["monetary_value"].to_numpy(float)
    objective = gamma_gamma._Objective(x, z)
    for point in (np.log([6.0, 3.7, 15.0]), np.zeros(3), np.log([0.5, 20.0, 2.0])):
        error = optimize.check_grad(lambda p: objective(p)[0], lambda p: objective(p)[1], point)
        assert error < 1e-5
    params = {"p": 6.0, "q": 3.7, "gamma": 15.0}
    per_customer = gamma_gamma.log_likelihood(params, x, z)
    assert -objective(np.log(list(params.values())))[0] * len(x) == pytest.approx(per_customer.sum())


def _expected_purchases_by_integration(
    params: dict[str, float], h: float, x: int, t_x: float, t: float
) -> float:
    """E[purchases in h | x, t_x, T] = P(alive) * E_p[(1 - ((alpha+T)/(alpha+T+p h))^(r+x)) / p]."""
    r, alpha, a, b = (params[k] for k in ("r", "alpha", "a", "b"))
    p_alive = ltv.probability_alive(params, [x], [t_x], [t])[0]
    posterior_p = stats.beta(a, b + x)

    def integrand(p: float) -> float:
        return (1.0 - ((alpha + t) / (alpha + t + p * h)) ** (r + x)) / p * posterior_p.pdf(p)

    value, _ = integrate.quad(integrand, 0.0, 1.0, limit=200, epsabs=1e-12, epsrel=1e-10)
    return p_alive * value


@pytest.mark.parametrize(
    "params",
    [
        PAPER_BGNBD,
        {"r": 2.0, "alpha": 30.0, "a": 3.0, "b": 10.0},
        {"r": 0.5, "alpha": 100.0, "a": 1.0 + 1e-9, "b": 0.5},  # a = 1 is 0/0 in the closed form
        {"r": 0.5, "alpha": 100.0, "a": 1.0 - 2e-4, "b": 0.5},
    ],
)
def test_expected_purchases_matches_numerical_integration(params: dict[str, float]) -> None:
    for x, t_x, t in ((0, 0.0, 10.0), (5, 9.0, 10.0), (60, 300.0, 365.0), (3, 1.0, 700.0)):
        for h in (0.5, 52.0, 5000.0):
            closed = ltv.expected_purchases(params, h, [x], [t_x], [t])[0]
            assert closed == pytest.approx(_expected_purchases_by_integration(params, h, x, t_x, t), rel=1e-5)


def test_expected_purchases_of_new_customer_is_the_x0_t0_case() -> None:
    horizons = np.array([1.0, 10.0, 100.0])
    new = ltv.expected_purchases_new_customer(PAPER_BGNBD, horizons)
    conditional = ltv.expected_purchases(PAPER_BGNBD, horizons, [0, 0, 0], [0, 0, 0], [0, 0, 0])
    np.testing.assert_allclose(new, conditional, rtol=1e-12)


# --- recovery on simulated data -----------------------------------------------------------------


def _standard_errors(objective, log_params: np.ndarray, n: int) -> np.ndarray:  # noqa: ANN001
    """Asymptotic standard errors of the log-parameters from a finite-difference Hessian."""
    step = 1e-4
    hessian = np.array([
        (objective(log_params + step * e)[1] - objective(log_params - step * e)[1]) / (2 * step)
        for e in np.eye(len(log_params))
    ])
    hessian = (hessian + hessian.T) / 2
    return np.sqrt(np.diag(np.linalg.inv(hessian * n)))


def test_bgnbd_recovers_simulated_parameters() -> None:
    true = {"r": 0.5, "alpha": 6.0, "a": 0.7, "b": 2.5}
    rng = np.random.default_rng(20240601)
    n = 20_000
    x, t_x, t = ltv.simulate_bgnbd(true, rng.uniform(26, 104, n), rng)
    fit = ltv.fit_bgnbd(x, t_x, t)
    estimate = np.log(list(fit.params.values()))
    se = _standard_errors(bgnbd._Objective(x, t_x, t, None), estimate, n)
    z = (estimate - np.log(list(true.values()))) / se
    assert np.all(np.abs(z) < 4), dict(zip(true, z, strict=True))
    assert_within_percent(fit.params, true, 20.0)


def test_gamma_gamma_recovers_simulated_parameters() -> None:
    true = {"p": 6.25, "q": 3.74, "gamma": 15.44}
    rng = np.random.default_rng(7)
    n = 20_000
    x = rng.integers(1, 12, n).astype(float)
    z = ltv.simulate_average_spend(true, x, rng)
    fit = ltv.fit_gamma_gamma(x, z)
    estimate = np.log(list(fit.params.values()))
    se = _standard_errors(gamma_gamma._Objective(x, z), estimate, n)
    z_scores = (estimate - np.log(list(true.values()))) / se
    assert np.all(np.abs(z_scores) < 4), dict(zip(true, z_scores, strict=True))
    true_mean = true["p"] * true["gamma"] / (true["q"] - 1)
    assert fit.population_mean_spend == pytest.approx(true_mean, rel=0.03)


# --- prediction properties ----------------------------------------------------------------------


def test_probability_alive_is_a_probability_and_one_without_repeat_purchase(
    cdnow_bgnbd: ltv.BgNbdFit, cdnow_summary: pd.DataFrame
) -> None:
    p = ltv.probability_alive(cdnow_bgnbd, *(cdnow_summary[c] for c in ("frequency", "recency", "T")))
    assert np.all((p >= 0) & (p <= 1))
    assert np.all(p[cdnow_summary["frequency"].to_numpy() == 0] == 1.0)
    assert np.any(p < 0.5)
    # More silence since the last purchase means less likely alive; extreme inputs stay finite.
    silence = ltv.probability_alive(cdnow_bgnbd, [3, 3, 3, 500], [10, 10, 10, 1], [11, 30, 60, 1e6])
    assert silence[0] > silence[1] > silence[2] and silence[3] == pytest.approx(0.0, abs=1e-300)


def test_expected_purchases_grow_with_horizon(cdnow_bgnbd: ltv.BgNbdFit, cdnow_summary: pd.DataFrame) -> None:
    horizons = np.array([0.0, 1.0, 4.0, 13.0, 26.0, 52.0, 104.0, 520.0])[:, None]
    rft = [cdnow_summary[c].to_numpy(float) for c in ("frequency", "recency", "T")]
    purchases = ltv.expected_purchases(cdnow_bgnbd, horizons, *rft)
    assert purchases.shape == (len(horizons), len(cdnow_summary))
    assert np.all(purchases[0] == 0.0)
    assert np.all(np.diff(purchases, axis=0) > 0)


def test_predictions_track_the_39_week_holdout(
    cdnow_bgnbd: ltv.BgNbdFit, cdnow_transactions: pd.DataFrame, cdnow_summary: pd.DataFrame
) -> None:
    full = ltv.rfm_summary(
        cdnow_transactions, "customer_id", "date", as_of=dt.date(1998, 6, 30), time_unit_days=WEEK
    )
    assert np.allclose(full["T"] - cdnow_summary["T"], 39.0)
    actual = full["frequency"] - cdnow_summary["frequency"]  # 1,882 purchase days
    predicted = ltv.expected_purchases(
        cdnow_bgnbd, 39.0, *(cdnow_summary[c] for c in ("frequency", "recency", "T"))
    )
    assert predicted.sum() == pytest.approx(actual.sum(), rel=0.15)
    top_decile = predicted >= np.quantile(predicted, 0.9)
    assert actual[top_decile].mean() > 5 * actual[~top_decile].mean()


def test_expected_average_spend_shrinks_towards_population_mean(cdnow_gamma_gamma: ltv.GammaGammaFit) -> None:
    mean = cdnow_gamma_gamma.population_mean_spend
    spend = ltv.expected_average_spend(cdnow_gamma_gamma, [0, 1, 10, 1000], [0.0, 100.0, 100.0, 100.0])
    assert spend[0] == pytest.approx(mean)
    assert mean < spend[1] < spend[2] < spend[3] < 100.0
    assert spend[3] == pytest.approx(100.0, rel=0.01)


def test_clv_is_discounted_sum_of_period_purchases_times_spend(cdnow_bgnbd: ltv.BgNbdFit) -> None:
    x, t_x, t, spend = np.array([0, 2, 10]), np.array([0, 30.43, 38]), np.array([38.86] * 3), 40.0
    horizon = 52.0  # weeks
    undiscounted = ltv.discounted_clv(cdnow_bgnbd, spend, x, t_x, t, horizon=horizon)
    np.testing.assert_allclose(undiscounted, ltv.expected_purchases(cdnow_bgnbd, horizon, x, t_x, t) * spend)
    # The split into periods does not matter without discounting.
    weekly = ltv.discounted_clv(cdnow_bgnbd, spend, x, t_x, t, horizon=horizon, period_days=7)
    np.testing.assert_allclose(weekly, undiscounted)
    # Discounting by hand, month by month (the last period is the short remainder).
    monthly = 0.01
    day_discount = ltv.discount_per_day(monthly_discount_rate=monthly)
    discounted = ltv.discounted_clv(cdnow_bgnbd, spend, x, t_x, t, horizon=horizon, day_discount=day_discount)
    month = 365 / 12 / WEEK
    ends = np.minimum(np.arange(1, 13) * month, horizon)
    cumulative = ltv.expected_purchases(cdnow_bgnbd, np.r_[0.0, ends][:, None], x, t_x, t)
    by_hand = (np.diff(cumulative, axis=0) * (1 + monthly) ** -(ends / month)[:, None]).sum(axis=0) * spend
    np.testing.assert_allclose(discounted, by_hand)
    assert np.all(discounted < undiscounted)


def test_monthly_and_equivalent_annual_discount_rates_agree() -> None:
    monthly = ltv.discount_per_day(monthly_discount_rate=0.01)
    annual = ltv.discount_per_day(annual_discount_rate=1.01**12 - 1)
    assert monthly == pytest.approx(annual)
    assert ltv.discount_per_day() == 1.0
    with pytest.raises(ValueError, match="not both"):
        ltv.discount_per_day(0.1, 0.01)
    with pytest.raises(ValueError, match="above -100%"):
        ltv.discount_per_day(annual_discount_rate=-1.0)


def test_predict_returns_one_row_per_customer(
    cdnow_bgnbd: ltv.BgNbdFit, cdnow_gamma_gamma: ltv.GammaGammaFit, cdnow_summary: pd.DataFrame
) -> None:
    columns = [cdnow_summary[c] for c in ("frequency", "recency", "T", "monetary_value")]
    result = ltv.predict(
        cdnow_bgnbd, cdnow_gamma_gamma, *columns,
        horizon=365 / WEEK, monthly_discount_rate=0.01, time_unit_days=WEEK,
    )
    assert list(result.columns) == ["p_alive", "expected_purchases", "expected_order_value", "clv"]
    assert result.index.equals(cdnow_summary.index)
    assert result.notna().all().all() and (result >= 0).all().all()
    undiscounted = ltv.predict(cdnow_bgnbd, cdnow_gamma_gamma, *columns, horizon=365 / WEEK)
    np.testing.assert_allclose(
        undiscounted["clv"], undiscounted["expected_purchases"] * undiscounted["expected_order_value"]
    )
    assert (result["clv"] <= undiscounted["clv"] + 1e-12).all()
    with pytest.raises(ValueError, match="differs from the BG/NBD fit"):
        ltv.predict(cdnow_bgnbd, cdnow_gamma_gamma, *columns, horizon=52, time_unit_days=1.0)


# --- rfm_summary --------------------------------------------------------------------------------


def _transactions(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["customer", "at", "amount"])
    return frame.assign(at=pd.to_datetime(frame["at"]))


def test_summary_ignores_transactions_after_as_of_and_aggregates_same_day() -> None:
    transactions = _transactions([
        ("a", "2024-01-01 09:00", 10.0),
        ("a", "2024-01-01 18:30", 5.0),   # same day as the first purchase: one purchase of 15
        ("a", "2024-01-08 10:00", 20.0),
        ("a", "2024-01-08 11:00", 4.0),   # same day: one repeat purchase of 24
        ("a", "2024-01-15 23:59", 30.0),  # on the as-of day: counted
        ("a", "2024-01-16 00:00", 99.0),  # after the as-of day: ignored
        ("b", "2024-01-10 12:00", 7.0),
        ("c", "2024-02-01 12:00", 1.0),   # only after the as-of day: no row
    ])
    summary = ltv.rfm_summary(transactions, "customer", "at", "amount", as_of="2024-01-15 08:00")
    assert summary.index.tolist() == ["a", "b"]
    assert summary.index.name == "customer"
    a, b = summary.loc["a"], summary.loc["b"]
    assert (a["frequency"], a["recency"], a["T"]) == (2, 14.0, 14.0)
    assert a["monetary_value"] == pytest.approx((24.0 + 30.0) / 2)
    assert (b["frequency"], b["recency"], b["T"], b["monetary_value"]) == (0, 0.0, 5.0, 0.0)
    assert summary.attrs == {"time_unit_days": 1.0, "as_of": "2024-01-15"}

    weeks = ltv.rfm_summary(transactions, "customer", "at", as_of=dt.date(2024, 1, 15), time_unit_days=7)
    assert "monetary_value" not in weeks.columns
    assert weeks.loc["a", "recency"] == pytest.approx(2.0) and weeks.loc["b", "T"] == pytest.approx(5 / 7)


def test_summary_takes_time_zone_aware_dates_at_local_wall_time() -> None:
    transactions = _transactions([("a", "2024-03-01 23:30", 1.0), ("a", "2024-03-03 00:10", 2.0)])
    transactions["at"] = transactions["at"].dt.tz_localize("Europe/Berlin")
    summary = ltv.rfm_summary(transactions, "customer", "at", "amount", as_of="2024-03-03")
    assert (summary.loc["a", "frequency"], summary.loc["a", "recency"]) == (1, 2.0)


def test_summary_errors() -> None:
    transactions = _transactions([("a", "2024-01-01", 1.0)])
    with pytest.raises(KeyError, match="no column"):
        ltv.rfm_summary(transactions, "customer_id", "at", as_of="2024-02-01")
    with pytest.raises(ValueError, match="time_unit_days"):
        ltv.rfm_summary(transactions, "customer", "at", as_of="2024-02-01", time_unit_days=0)
    with pytest.raises(ValueError, match="have no customer"):
        ltv.rfm_summary(transactions.assign(customer=None), "customer", "at", as_of="2024-02-01")
    with pytest.raises(ValueError, match="have no at"):
        ltv.rfm_summary(transactions.assign(at=pd.NaT), "customer", "at", as_of="2024-02-01")


# --- error paths --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frequency", "recency", "T", "message"),
    [
        ([], [], [], "no customers"),
        ([1, -1], [1, 0], [2, 2], "frequency has 1 negative"),
        ([1, 1], [-1, 1], [2, 2], "recency has 1 negative"),
        ([1, 1], [1, 1], [2, -2], "T has 1 negative"),
        ([1, 1], [1, np.nan], [2, 2], "recency has 1 missing"),
        ([1.5, 1], [1, 1], [2, 2], "whole numbers"),
        ([1, 1], [3, 1], [2, 2], "recency exceeds T"),
        ([0, 1], [1, 1], [2, 2], "recency must be 0"),
        ([1, 1], [1, 1], [2], "same length"),
    ],
)
def test_fit_bgnbd_rejects_bad_input(frequency, recency, T, message) -> None:  # noqa: ANN001, N803
    with pytest.raises(ltv.FitError, match=message):
        ltv.fit_bgnbd(frequency, recency, T)


def test_fit_bgnbd_fails_loudly_without_convergence(cdnow_summary: pd.DataFrame) -> None:
    rft = [cdnow_summary[c] for c in ("frequency", "recency", "T")]
    with pytest.raises(ltv.FitError, match="did not converge"):
        ltv.fit_bgnbd(*rft, max_iterations=2)
    fit = ltv.fit_bgnbd(*rft, max_iterations=2, raise_on_failure=False)
    assert not fit.converged and "optimiser stopped" in fit.message
    with pytest.raises(ltv.FitError, match="time_unit_days"):
        ltv.fit_bgnbd(*rft, time_unit_days=-7)


@pytest.mark.parametrize(
    ("frequency", "monetary", "message"),
    [
        ([1, -2], [10.0, 3.0], "frequency has 1 negative"),
        ([1, 2], [10.0, np.inf], "missing or infinite"),
        ([1, 2], [10.0], "same length"),
    ],
)
def test_fit_gamma_gamma_rejects_bad_input(frequency, monetary, message) -> None:  # noqa: ANN001
    with pytest.raises(ltv.FitError, match=message):
        ltv.fit_gamma_gamma(frequency, monetary)


def test_fit_gamma_gamma_fails_loudly_without_convergence(cdnow_summary: pd.DataFrame) -> None:
    with pytest.raises(ltv.FitError, match="did not converge"):
        ltv.fit_gamma_gamma(cdnow_summary["frequency"], cdnow_summary["monetary_value"], max_iterations=2)
    with pytest.raises(ValueError, match="q <= 1"):
        ltv.expected_average_spend({"p": 1.0, "q": 0.9, "gamma": 1.0}, [0], [0.0])
