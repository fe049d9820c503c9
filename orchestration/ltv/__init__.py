"""Probabilistic customer lifetime value: RFM summary, BG/NBD purchases, Gamma-Gamma spend, discounted CLV."""

from orchestration.ltv.bgnbd import (
    BgNbdFit,
    expected_purchases,
    expected_purchases_new_customer,
    fit_bgnbd,
    probability_alive,
    simulate_bgnbd,
)
from orchestration.ltv.clv import discount_per_day, discounted_clv, predict
from orchestration.ltv.fitting import FitError
from orchestration.ltv.gamma_gamma import (
    GammaGammaFit,
    expected_average_spend,
    fit_gamma_gamma,
    simulate_average_spend,
)
from orchestration.ltv.summary import rfm_summary

__all__ = [
    "BgNbdFit",
    "FitError",
    "GammaGammaFit",
    "discount_per_day",
    "discounted_clv",
    "expected_average_spend",
    "expected_purchases",
    "expected_purchases_new_customer",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "predict",
    "probability_alive",
    "rfm_summary",
    "simulate_average_spend",
    "simulate_bgnbd",
]
