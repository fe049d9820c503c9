"""Dagster asset: LTV (BG/NBD + Gamma-Gamma) and churn predictions, refitted on every run.

Runs on the dbt target warehouse (`WarehouseResource.open()`: DuckDB, PostgreSQL or Spark). The
engine summarises the purchases of the dbt model `int_transactions_attributed` up to the as-of
date (CDP_AS_OF, or now): one RFM row per customer (orchestration/ltv/warehouse_summary.py) and
the churn features at three cut-offs (orchestration/churn.py), so no transaction is pulled into
Python. Python fits the LTV models (orchestration/ltv) and the churn model on those summaries and
writes back to the schema of the dbt source `predictions`:

* `customer_predictions`: one row per customer who purchased before the as-of date;
* `ltv_model_fits`: fitted parameters in long form, appended per run;
* `churn_model_evaluation`: out-of-time metrics (AUC, Brier, top-decile lift, calibration
  deciles) of the churn model and of each purchase-propensity horizon
  (orchestration/propensity.py, `model_version` and `horizon_days` tell them apart), appended per run.

dbt reads them back through the source `predictions` (models/intermediate/features).
"""


import datetime as dt
import time
from dataclasses import dataclass

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from orchestration import churn, propensity
from orchestration.catalog import catalog
from orchestration.ltv.bgnbd import BgNbdFit, fit_bgnbd
from orchestration.ltv.clv import predict as predict_ltv
from orchestration.ltv.gamma_gamma import GammaGammaFit, fit_gamma_gamma
from orchestration.ltv.summary import rfm_summary
from orchestration.ltv.warehouse_summary import rfm_summary_on
from orchestration.run_report import first_line
from orchestration.settings import load_settings
from orchestration.warehouse import WAREHOUSE_POOL, WarehouseResource
from orchestration.warehouse.base import Warehouse

# The dbt source the tables belong to (models/intermediate/features/_predictions__sources.yml),
# also the prefix of their asset keys; the schema they live in is the one that source declares.
SCHEMA = "predictions"
LTV_MODEL_VERSION = "bgnbd-gg-1"
TRANSACTIONS_MODEL = "int_transactions_attributed"
UPSTREAM = dg.AssetKey([TRANSACTIONS_MODEL])
KEYS = {
    name: dg.AssetKey([SCHEMA, name])
    for name in ("customer_predictions", "ltv_model_fits", "churn_model_evaluation")
}
REFRESH_CHECK = "predictions_refreshed"
PROPENSITY_CHECK = "propensity_fitted"


def transactions_relation() -> str:
    """The purchases the models learn from: dbt's int_transactions_attributed."""
    return catalog().relation(TRANSACTIONS_MODEL)


def predictions_schema() -> str:
    """The schema dbt reads the prediction tables from (its source `predictions`)."""
    return catalog().source_schema(SCHEMA)


class PredictionsConfig(dg.Config):
    """Run configuration (defaults suit weekly-ish retail purchase data)."""

    time_unit_days: float = 7.0
    horizons_days: list[int] = [90, 365]
    annual_discount_rate: float = 0.10
    churn_horizon_days: int = 90
    seed: int = 0


def as_of_bound(as_of: dt.date | None) -> dt.datetime:
    """Exclusive upper time bound, the same as dbt's `as_of_timestamp()`: the end of the as-of day."""
    if as_of is None:
        return dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())


@dataclass
class LtvResult:
    predictions: pd.DataFrame  # customer_id, p_alive, expected_purchases_<h>d, ..., predicted_clv_365d
    fits: pd.DataFrame  # model, parameter, value, time_unit, log_likelihood, n_customers, fit_case, ...
    seconds: dict[str, float]


def fit_ltv(source: Warehouse | pd.DataFrame, as_of_at: dt.datetime,
            config: PredictionsConfig) -> LtvResult:
    """Fit BG/NBD and Gamma-Gamma with the LTV library on the RFM summary of the purchases before
    `as_of_at`, and predict over the configured horizons. `source` is the warehouse (the engine
    summarises dbt's transactions: the asset's path) or a frame of transactions (customer_id,
    transacted_at, amount) summarised in pandas, the in-memory twin the LTV tests use."""
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    summary = summarise(source, as_of_at, config.time_unit_days)
    seconds["rfm_summary"] = time.perf_counter() - start

    start = time.perf_counter()
    bgnbd = fit_bgnbd(summary["frequency"], summary["recency"], summary["T"])
    seconds["fit_bgnbd"] = time.perf_counter() - start
    start = time.perf_counter()
    # Repeat customers whose refunds net their average spend to 0 or less are left out of the fit
    # and get an expected order value (and CLV) of 0; see docs/ltv-models.md.
    gamma_gamma = fit_gamma_gamma(summary["frequency"], summary["monetary_value"])
    seconds["fit_gamma_gamma"] = time.perf_counter() - start

    start = time.perf_counter()
    predictions = pd.DataFrame({"customer_id": summary.index.astype(str)})
    for days in config.horizons_days:
        result = predict_ltv(
            bgnbd, gamma_gamma, summary["frequency"], summary["recency"], summary["T"],
            summary["monetary_value"], horizon=days / config.time_unit_days,
            annual_discount_rate=config.annual_discount_rate,
            time_unit_days=config.time_unit_days)
        predictions[f"expected_purchases_{days}d"] = result["expected_purchases"].to_numpy()
        predictions[f"predicted_clv_{days}d"] = result["clv"].to_numpy()
        predictions["p_alive"] = result["p_alive"].to_numpy()
        predictions["expected_order_value"] = result["expected_order_value"].to_numpy()
    seconds["predict"] = time.perf_counter() - start

    return LtvResult(predictions=predictions, fits=fit_rows(bgnbd, gamma_gamma, config),
                     seconds=seconds)


def summarise(source: Warehouse | pd.DataFrame, as_of_at: dt.datetime,
              time_unit_days: float) -> pd.DataFrame:
    """The RFM summary of the purchases before `as_of_at`: on the engine, or of a frame."""
    if isinstance(source, Warehouse):
        return rfm_summary_on(source, transactions_relation(), as_of_at, time_unit_days)
    # rfm_summary counts whole days up to and including the as-of day; as_of_at is exclusive.
    as_of_day = (as_of_at - dt.timedelta(microseconds=1)).date()
    return rfm_summary(source, "customer_id", "transacted_at", "amount", as_of=as_of_day,
                       time_unit_days=time_unit_days)


def fit_rows(bgnbd: BgNbdFit, gamma_gamma: GammaGammaFit, config: PredictionsConfig) -> pd.DataFrame:
    """Long-form `ltv_model_fits` rows: one per identified parameter, with the fit case and message.

    A limiting case has only the parameters it identifies (e.g. no_dropout_limit: r, alpha, a = 0;
    no_repeat_spend: none, so one row with parameter NULL keeps the case visible).
    """
    rows = []
    for model, fit in (("bgnbd", bgnbd), ("gamma_gamma", gamma_gamma)):
        common = {"time_unit": f"{config.time_unit_days:g} days",
                  "log_likelihood": float(fit.log_likelihood), "n_customers": int(fit.n_customers),
                  "fit_case": fit.fit_case, "fit_message": fit.message}
        params = fit.params.items() or [(None, None)]
        rows += [{"model": model, "parameter": parameter,
                  "value": None if value is None else float(value), **common}
                 for parameter, value in params]
    return pd.DataFrame(rows).astype({"parameter": "string", "value": "float64"})


# Columns added to ltv_model_fits after its first release. A warehouse whose table predates them
# gets them (NULL for the earlier runs), so that appending this run's rows by name keeps working.
FITS_ADDED_COLUMNS = {"fit_case": "string", "fit_message": "string"}


def upgrade_fits_table(wh: Warehouse) -> None:
    """Add the FITS_ADDED_COLUMNS an existing `ltv_model_fits` lacks (no-op for a new warehouse),
    by an atomic rewrite of the table (the one portable way to add a column: Spark's and
    PostgreSQL's ALTER TABLE differ)."""
    relation = f"{predictions_schema()}.ltv_model_fits"
    existing = wh.columns(relation)
    missing = [column for column in FITS_ADDED_COLUMNS if existing and column not in existing]
    if not missing:
        return
    added = ", ".join(f"cast(null as {wh.sql_type(FITS_ADDED_COLUMNS[c])}) as {c}" for c in missing)
    wh.replace_table_as(relation, f"select *, {added} from {relation}")


def build_predictions(
    wh: Warehouse, as_of_at: dt.datetime, config: PredictionsConfig,
    propensity_out: list[propensity.PropensityResult] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, churn.ChurnEvaluation, dict[str, float]]:
    """(customer_predictions, ltv_model_fits, churn_model_evaluation, evaluation, timings);
    each propensity horizon's result is appended to `propensity_out` when given."""
    if count_purchases(wh, as_of_at) == 0:
        raise dg.Failure(f"no purchases before {as_of_at} in {transactions_relation()}: "
                         "nothing to fit")
    ltv_result = fit_ltv(wh, as_of_at, config)

    start = time.perf_counter()
    evaluation, churn_scores = churn.train_evaluate_score(
        wh, transactions_relation(), as_of_at, config.churn_horizon_days, config.seed)
    timings = {**ltv_result.seconds, "churn": time.perf_counter() - start}

    start = time.perf_counter()
    propensity_scores, propensity_rows, propensity_results = propensity.score_horizons(
        wh, transactions_relation(), f"{predictions_schema()}.customer_predictions", as_of_at,
        config.seed)
    timings["propensity"] = time.perf_counter() - start

    predictions = ltv_result.predictions.merge(churn_scores, on="customer_id", how="left")
    if propensity_scores is not None:
        predictions = predictions.merge(propensity_scores, on="customer_id", how="left")
    predictions.insert(1, "as_of_at", pd.Timestamp(as_of_at))
    predictions["ltv_model_version"] = LTV_MODEL_VERSION
    predictions["churn_model_version"] = churn.MODEL_VERSION
    fits = ltv_result.fits.assign(as_of_at=pd.Timestamp(as_of_at), fitted_at=pd.Timestamp.now())

    metrics = [{"metric": name, "score_decile": None, "value": value}
               for name, value in evaluation.metrics().items()]
    for row in evaluation.calibration.itertuples():
        metrics += [
            {"metric": "calibration_mean_predicted", "score_decile": row.score_decile,
             "value": row.mean_predicted},
            {"metric": "calibration_observed_rate", "score_decile": row.score_decile,
             "value": row.observed_rate},
        ]
    evaluation_table = pd.DataFrame(metrics).assign(
        as_of_at=pd.Timestamp(as_of_at),
        train_cutoff=pd.Timestamp(evaluation.train_cutoff),
        test_cutoff=pd.Timestamp(evaluation.test_cutoff),
        horizon_days=evaluation.horizon_days,
        model_version=churn.MODEL_VERSION,
        evaluated_at=pd.Timestamp.now(),
    )
    if len(propensity_rows):
        evaluation_table = pd.concat([evaluation_table, propensity_rows.assign(
            as_of_at=pd.Timestamp(as_of_at), evaluated_at=pd.Timestamp.now())], ignore_index=True)
    evaluation_table["score_decile"] = evaluation_table["score_decile"].astype("Int64")
    if propensity_out is not None:
        propensity_out.extend(propensity_results)
    return predictions, fits, evaluation_table, evaluation, timings


def to_table(frame: pd.DataFrame) -> pa.Table:
    """The frame as Arrow with microsecond timestamps (the `timestamp` of every engine; pandas'
    nanoseconds would make DuckDB create TIMESTAMP_NS columns)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    fields = [pa.field(f.name, pa.timestamp("us", f.type.tz)) if pa.types.is_timestamp(f.type)
              else f for f in table.schema]
    return table.cast(pa.schema(fields), safe=False)


def write_tables(wh: Warehouse, predictions: pd.DataFrame, fits: pd.DataFrame,
                 evaluation: pd.DataFrame) -> None:
    """Replace customer_predictions; append fits and evaluation (a run for the same as-of replaces
    its rows: delete by as_of_at, then append), in one transaction where the engine has them."""
    schema = predictions_schema()
    wh.ensure_schema(schema)
    upgrade_fits_table(wh)
    with wh.transaction():
        wh.replace_table(f"{schema}.customer_predictions", to_table(predictions))
        for table, frame in (("ltv_model_fits", fits), ("churn_model_evaluation", evaluation)):
            relation = f"{schema}.{table}"
            rows = to_table(frame)
            if wh.exists(relation):
                wh.delete_keys(relation, rows.select(["as_of_at"]).slice(0, 1))
            wh.append(relation, rows)


def count_purchases(wh: Warehouse, as_of_at: dt.datetime) -> int:
    """Purchases the models could learn from: those before the as-of bound."""
    return int(wh.scalar(f"select count(*) from {transactions_relation()} "
                         "where transacted_at < %(as_of)s", {"as_of": as_of_at}) or 0)


def source_columns(table: str = "customer_predictions") -> list[str]:
    """The columns dbt's source `predictions.<table>` declares (one home: its YAML)."""
    return list(catalog().source_node(SCHEMA, table).get("columns", {}))


def _placeholder_type(column: str) -> pa.DataType:
    if column.endswith("_at"):
        return pa.timestamp("us")
    if column.endswith("_id") or column.endswith("_version"):
        return pa.string()
    return pa.float64()


def keep_previous_predictions(wh: Warehouse) -> str | None:
    """Leave the last good predictions in place; the as-of they were computed for (None: none yet).

    With no previous table, an empty one with the source's declared columns is created, so the
    dbt models that read it still build (on no predictions) instead of failing."""
    relation = f"{predictions_schema()}.customer_predictions"
    if not wh.exists(relation):
        empty = pa.schema([(c, _placeholder_type(c)) for c in source_columns()]).empty_table()
        wh.replace_table(relation, empty)
        return None
    previous = wh.scalar(f"select max(as_of_at) from {relation}")
    return None if previous is None else str(pd.Timestamp(previous).to_pydatetime())


@dataclass(frozen=True)
class Degraded:
    """Why this run could not refresh the predictions, and how bad that is."""

    reason: str
    severity: dg.AssetCheckSeverity


def degraded_results(degraded: Degraded, as_of_at: dt.datetime, kept_as_of: str | None):
    """A materialisation per key saying nothing was refreshed, and the failing refresh check.

    The materialisations let the dbt models downstream run in the same run (on the kept table);
    the check, not the step, carries the failure: ERROR makes `cdp run` exit 1, WARN exits 0."""
    kept = f"kept the predictions as of {kept_as_of}" if kept_as_of else \
        "no previous predictions: an empty table stands in"
    metadata = {
        "refreshed": dg.MetadataValue.bool(False),
        "degraded": dg.MetadataValue.text(degraded.reason),
        "requested_as_of_at": dg.MetadataValue.text(str(as_of_at)),
        "kept_as_of_at": dg.MetadataValue.text(kept_as_of or ""),
    }
    for key in KEYS.values():
        yield dg.MaterializeResult(asset_key=key, metadata=metadata)
    yield dg.AssetCheckResult(
        asset_key=KEYS["customer_predictions"], check_name=REFRESH_CHECK, passed=False,
        severity=degraded.severity, description=f"not refreshed: {degraded.reason}; {kept}",
        metadata={"figure": dg.MetadataValue.text(f"{degraded.reason}; {kept}"),
                  "kept_as_of_at": dg.MetadataValue.text(kept_as_of or "")})


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            KEYS["customer_predictions"], deps=[UPSTREAM], group_name="features",
            owners=["team:analytics"], kinds={"python", "scikit-learn", "duckdb"},
            description="p_alive, expected purchases (90/365 days), predicted CLV and churn risk "
                        "and p_purchase_<h>d per customer, refitted every run."),
        dg.AssetSpec(
            KEYS["ltv_model_fits"], deps=[UPSTREAM], group_name="features",
            owners=["team:analytics"], kinds={"python", "duckdb"},
            description="BG/NBD and Gamma-Gamma parameters per run (long form)."),
        dg.AssetSpec(
            KEYS["churn_model_evaluation"], deps=[UPSTREAM], group_name="features",
            owners=["team:analytics"], kinds={"python", "duckdb"},
            description="Out-of-time churn model evaluation per run: AUC, Brier, lift, calibration."),
    ],
    check_specs=[dg.AssetCheckSpec(
        REFRESH_CHECK, asset=KEYS["customer_predictions"],
        description="The predictions were refitted in this run. Fails (ERROR) when the fit "
                    "raised, warns when there was nothing to fit (no purchases before the as-of "
                    "date); either way the previous table stays and downstream models use it."),
        dg.AssetCheckSpec(
            PROPENSITY_CHECK, asset=KEYS["customer_predictions"],
            description="Every purchase-propensity horizon was fitted in this run. Warns when one "
                        "could not be (one class only, too few rows, the fit raised): its "
                        "p_purchase column keeps the previous run's scores, and the reason is "
                        "in the check and the evaluation table (metric `fitted` = 0).")],
    pool=WAREHOUSE_POOL,
    name="customer_predictions",
)
def customer_predictions(context: dg.AssetExecutionContext, config: PredictionsConfig,
                         warehouse: WarehouseResource):
    """Fit LTV and churn models on purchases up to the as-of date and write predictions back.

    A fit that raises, or data with nothing to fit, does not fail the step: the previous tables
    stay, the check `predictions_refreshed` fails, and everything downstream runs on the last
    good predictions (docs/operations.md)."""
    as_of_at = as_of_bound(load_settings().as_of)
    with warehouse.open() as wh:
        degraded = None
        try:
            if count_purchases(wh, as_of_at) == 0:
                degraded = Degraded(f"no purchases before {as_of_at} in {transactions_relation()}: "
                                    "nothing to fit", dg.AssetCheckSeverity.WARN)
            else:
                propensity_results: list[propensity.PropensityResult] = []
                predictions, fits, evaluation_table, evaluation, timings = build_predictions(
                    wh, as_of_at, config, propensity_results)
                write_tables(wh, predictions, fits, evaluation_table)
        except Exception as error:  # noqa: BLE001 - any fit failure degrades, never stops the run
            context.log.exception("predictions not refreshed")
            degraded = Degraded(f"{type(error).__name__}: {first_line(str(error))}",
                                dg.AssetCheckSeverity.ERROR)
        if degraded is not None:
            kept_as_of = keep_previous_predictions(wh)
            context.log.warning(f"predictions not refreshed: {degraded.reason}")
            yield from degraded_results(degraded, as_of_at, kept_as_of)
            yield dg.AssetCheckResult(
                asset_key=KEYS["customer_predictions"], check_name=PROPENSITY_CHECK, passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"not fitted: predictions not refreshed ({degraded.reason})")
            return
    context.log.info(f"predictions for {len(predictions)} customers as of {as_of_at}: "
                     f"churn AUC {evaluation.auc:.3f}, top-decile lift {evaluation.top_decile_lift:.2f}")
    params = {f"{r.model}.{r.parameter}": dg.MetadataValue.float(float(r.value))
              for r in fits.itertuples()}
    yield dg.MaterializeResult(asset_key=KEYS["customer_predictions"], metadata={
        "dagster/row_count": dg.MetadataValue.int(len(predictions)),
        "as_of_at": dg.MetadataValue.text(str(as_of_at)),
        "mean_p_alive": dg.MetadataValue.float(float(predictions["p_alive"].mean())),
        "mean_predicted_clv_365d": dg.MetadataValue.float(
            float(predictions.get("predicted_clv_365d", pd.Series([np.nan])).mean())),
        "churn_auc": dg.MetadataValue.float(evaluation.auc),
        "churn_top_decile_lift": dg.MetadataValue.float(evaluation.top_decile_lift),
        **{f"seconds_{k}": dg.MetadataValue.float(round(v, 3)) for k, v in timings.items()},
    })
    yield dg.MaterializeResult(asset_key=KEYS["ltv_model_fits"], metadata={
        "dagster/row_count": dg.MetadataValue.int(len(fits)),
        **params,
        "bgnbd.log_likelihood": dg.MetadataValue.float(
            float(fits.loc[fits["model"] == "bgnbd", "log_likelihood"].iloc[0])),
        "n_customers": dg.MetadataValue.int(int(fits["n_customers"].max())),
    })
    yield dg.MaterializeResult(asset_key=KEYS["churn_model_evaluation"], metadata={
        "auc": dg.MetadataValue.float(evaluation.auc),
        "brier": dg.MetadataValue.float(evaluation.brier),
        "top_decile_lift": dg.MetadataValue.float(evaluation.top_decile_lift),
        "n_train": dg.MetadataValue.int(evaluation.n_train),
        "n_test": dg.MetadataValue.int(evaluation.n_test),
        "test_churn_rate": dg.MetadataValue.float(evaluation.test_churn_rate),
        "train_cutoff": dg.MetadataValue.text(str(evaluation.train_cutoff)),
        "test_cutoff": dg.MetadataValue.text(str(evaluation.test_cutoff)),
        **{k: dg.MetadataValue.float(v) for k, v in propensity.summary(propensity_results)[0].items()
           if not isinstance(v, str)},
        "calibration": dg.MetadataValue.md(evaluation.calibration.to_markdown(index=False)
                                           if _has_tabulate() else evaluation.calibration.to_string()),
    })
    yield dg.AssetCheckResult(asset_key=KEYS["customer_predictions"], check_name=REFRESH_CHECK,
                              passed=True, metadata={"as_of_at": dg.MetadataValue.text(
                                  str(as_of_at))})
    figures, unfitted = propensity.summary(propensity_results)
    for reason in unfitted:
        context.log.warning(f"purchase propensity not refitted: {reason}")
    yield dg.AssetCheckResult(
        asset_key=KEYS["customer_predictions"], check_name=PROPENSITY_CHECK, passed=not unfitted,
        severity=dg.AssetCheckSeverity.WARN, description="; ".join(unfitted) or None,
        metadata={k: dg.MetadataValue.text(v) if isinstance(v, str) else dg.MetadataValue.float(v)
                  for k, v in figures.items()})


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


PREDICTION_ASSETS = [customer_predictions]
