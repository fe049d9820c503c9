"""Purchase propensity: calibrated probability of a purchase within each horizon, out-of-time evaluated.

For a horizon h (dbt var `features.propensity_horizons_days`, e.g. 30 and 90) the label of a
customer at a cut-off is 1 when they make a purchase in [cut-off, cut-off + h). The features are
churn's point-in-time purchase features (orchestration/churn.py `features_at`, one home for them):
the churn label is the complement of this one. As churn does, the model is trained at T - 2h,
evaluated out of time at T - h (labels end at the as-of bound T), then refitted at T - h and used
to score every customer at T. The classifier is churn's gradient boosting wrapped in sklearn's
`CalibratedClassifierCV` (isotonic, or Platt's sigmoid on small data), so the scores are probabilities (the Brier score and the
calibration deciles recorded with the churn metrics check it).

A horizon whose training data cannot be fitted (one class only, too few rows, a fit that raises)
does not stop the run: `Unfittable` carries the reason, and predictions.py keeps the last good
column and reports why (asset check `propensity_fitted`, WARN).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.metrics import brier_score_loss, roc_auc_score

from orchestration import churn
from orchestration.catalog import dbt_var
from orchestration.warehouse.base import Warehouse

MODEL_VERSION = "propensity-hgb-calibrated-1"
# Calibration fits on held-out folds: each class needs enough rows in every fold. Isotonic
# regression needs many rows (scikit-learn's guide: it overfits below ~1000); under that, Platt's
# sigmoid, which keeps the ranking (on the 148-customer sample isotonic flattened it to AUC 0.5).
CALIBRATION_FOLDS = 3
MIN_ROWS_PER_CLASS = 10
ISOTONIC_MIN_ROWS = 1000


def calibration_method(n_rows: int) -> str:
    """`isotonic` from ISOTONIC_MIN_ROWS training rows on, `sigmoid` (Platt) below."""
    return "isotonic" if n_rows >= ISOTONIC_MIN_ROWS else "sigmoid"


def horizons_days() -> tuple[int, ...]:
    """The horizons of dbt var `features.propensity_horizons_days` (columns p_purchase_<h>d)."""
    return tuple(int(days) for days in dbt_var("features.propensity_horizons_days"))


def column(horizon_days: int) -> str:
    """The predictions column of a horizon."""
    return f"p_purchase_{int(horizon_days)}d"


class Unfittable(Exception):
    """The training data of a horizon cannot give a model (the message says why)."""


def inputs(frame: pd.DataFrame) -> np.ndarray:
    """The model's inputs: churn's feature columns."""
    return frame[list(churn.feature_columns())].to_numpy()


def labelled(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(features, bought label) of churn's labelled feature frame: bought = 1 - churned."""
    return inputs(frame), 1 - frame["churned"].to_numpy().astype("int64")


def base_model(n_rows: int, seed: int = 0):
    """Churn's gradient boosting, its leaves at most a tenth of a calibration fold: churn's
    40-row minimum leaves no split to a fold of a small shop (75 rows: a constant, AUC 0.5)."""
    fold_rows = n_rows * (CALIBRATION_FOLDS - 1) // CALIBRATION_FOLDS
    model = churn.new_model(seed)
    leaf = model.get_params()["min_samples_leaf"]
    return model.set_params(min_samples_leaf=max(5, min(leaf, fold_rows // 10)))


def fit(frame: pd.DataFrame, horizon_days: int, cutoff: dt.datetime,
        seed: int = 0) -> CalibratedClassifierCV:
    """A calibrated classifier of a purchase within `horizon_days` of `cutoff`, or Unfittable."""
    x, y = labelled(frame)
    buyers = int(y.sum())
    where = f"at cut-off {cutoff:%Y-%m-%d} ({horizon_days}-day horizon, {len(y)} customers)"
    if buyers in (0, len(y)):
        raise Unfittable(f"one class only {where}: "
                         f"{'every' if buyers else 'no'} customer bought in the horizon")
    if min(buyers, len(y) - buyers) < MIN_ROWS_PER_CLASS:
        raise Unfittable(f"too few rows {where}: {buyers} bought, {len(y) - buyers} did not "
                         f"(each needs at least {MIN_ROWS_PER_CLASS})")
    model = CalibratedClassifierCV(base_model(len(y), seed), method=calibration_method(len(y)),
                                   cv=CALIBRATION_FOLDS)
    try:
        with churn.fit_threads():
            return model.fit(x, y)
    except (ValueError, ArithmeticError) as error:
        raise Unfittable(f"fit failed {where}: {error}") from error


def predict(model: CalibratedClassifierCV, frame: pd.DataFrame) -> np.ndarray:
    """P(purchase within the horizon) per row of a churn feature frame."""
    if not len(frame):
        return np.array([], dtype="float64")
    with churn.fit_threads():
        return np.clip(model.predict_proba(inputs(frame))[:, 1], 0.0, 1.0)


@dataclass
class PropensityResult:
    """One horizon's outcome: scores and evaluation, or the reason there are none."""

    horizon_days: int
    train_cutoff: dt.datetime
    test_cutoff: dt.datetime
    n_train: int
    n_test: int
    scores: pd.DataFrame | None = None  # customer_id, p_purchase_<h>d
    reason: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    calibration: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)


def evaluate(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """AUC, Brier score, top-decile lift and the purchase rate of labels `y` under `score`."""
    both = len(np.unique(y)) == 2
    return {
        "auc": float(roc_auc_score(y, score)) if both else float("nan"),
        "brier": float(brier_score_loss(y, score)) if len(y) else float("nan"),
        "top_decile_lift": churn.top_decile_lift(y, score) if len(y) else float("nan"),
        "purchase_rate": float(np.mean(y)) if len(y) else float("nan"),
    }


def train_evaluate_score(wh: Warehouse, transactions: str, as_of_at: dt.datetime,
                         horizon_days: int, seed: int = 0) -> PropensityResult:
    """Out-of-time evaluation at as_of_at - h (trained at as_of_at - 2h), then scores at as_of_at
    from the model refitted at as_of_at - h. Never raises Unfittable: it becomes `reason`."""
    test_cutoff = as_of_at - dt.timedelta(days=horizon_days)
    train_cutoff = test_cutoff - dt.timedelta(days=horizon_days)
    train = churn.features_at(wh, transactions, train_cutoff, horizon_days, before=as_of_at)
    test = churn.features_at(wh, transactions, test_cutoff, horizon_days, before=as_of_at)
    result = PropensityResult(horizon_days, train_cutoff, test_cutoff, len(train), len(test))
    try:
        _, y_test = labelled(test)
        score = predict(fit(train, horizon_days, train_cutoff, seed), test)
        scoring_model = fit(test, horizon_days, test_cutoff, seed)
    except Unfittable as error:
        result.reason = str(error)
        return result
    result.metrics = {**evaluate(y_test, score), "n_train": float(len(train)),
                      "n_test": float(len(test))}
    result.calibration = churn.calibration_table(y_test, score)
    current = churn.features_at(wh, transactions, as_of_at, None, before=as_of_at)
    result.scores = pd.DataFrame({"customer_id": current["customer_id"],
                                  column(horizon_days): predict(scoring_model, current)})
    return result


def previous_scores(wh: Warehouse, relation: str, horizon_days: int) -> pd.DataFrame | None:
    """The last good p_purchase_<h>d of `relation` (customer_predictions), None if it has none."""
    name = column(horizon_days)
    if not wh.exists(relation) or name not in wh.columns(relation):
        return None
    kept = wh.query(f"select customer_id, {name} from {relation} where {name} is not null")
    return kept if len(kept) else None


def evaluation_rows(result: PropensityResult) -> pd.DataFrame:
    """The horizon's rows of the evaluation table (metric, score_decile, value, cut-offs, ...):
    `fitted` is 1 or 0, so a run that kept the previous scores stays visible in the table."""
    rows = [{"metric": "fitted", "score_decile": None,
             "value": 0.0 if result.reason else 1.0}]
    rows += [{"metric": name, "score_decile": None, "value": value}
             for name, value in result.metrics.items()]
    for row in result.calibration.itertuples():
        rows += [
            {"metric": "calibration_mean_predicted", "score_decile": row.score_decile,
             "value": row.mean_predicted},
            {"metric": "calibration_observed_rate", "score_decile": row.score_decile,
             "value": row.observed_rate},
        ]
    return pd.DataFrame(rows).assign(
        train_cutoff=pd.Timestamp(result.train_cutoff),
        test_cutoff=pd.Timestamp(result.test_cutoff),
        horizon_days=result.horizon_days,
        model_version=MODEL_VERSION,
    )


def score_horizons(wh: Warehouse, transactions: str, predictions_relation: str,
                   as_of_at: dt.datetime, seed: int = 0,
                   horizons: tuple[int, ...] | None = None,
                   ) -> tuple[pd.DataFrame | None, pd.DataFrame, list[PropensityResult]]:
    """(customer_id + one p_purchase column per horizon or None, evaluation rows, results).

    An unfittable horizon keeps its previous column from `predictions_relation` (NULL for a
    customer it did not score, all NULL when there is none)."""
    results = [train_evaluate_score(wh, transactions, as_of_at, h, seed)
               for h in (horizons or horizons_days())]
    scores: pd.DataFrame | None = None
    for result in results:
        frame = result.scores if result.scores is not None else previous_scores(
            wh, predictions_relation, result.horizon_days)
        if frame is None:
            frame = pd.DataFrame({"customer_id": pd.Series(dtype="string"),
                                  column(result.horizon_days): pd.Series(dtype="float64")})
        scores = frame if scores is None else scores.merge(frame, on="customer_id", how="outer")
    rows = pd.concat([evaluation_rows(r) for r in results], ignore_index=True) if results \
        else pd.DataFrame()
    return scores, rows, results


def summary(results: list[PropensityResult]) -> tuple[dict[str, float | str], list[str]]:
    """(metadata figures per horizon, the reasons of the horizons that kept previous scores)."""
    figures: dict[str, float | str] = {}
    for result in results:
        name = column(result.horizon_days)
        for metric in ("auc", "brier", "top_decile_lift"):
            if metric in result.metrics:
                figures[f"{name}.{metric}"] = result.metrics[metric]
        if result.reason:
            figures[f"{name}.kept_previous"] = result.reason
    reasons = [f"{column(r.horizon_days)}: {r.reason}; kept the previous scores"
               for r in results if r.reason]
    return figures, reasons
