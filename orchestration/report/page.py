"""The run report's charts, each read from one warehouse table, and the static HTML page they make."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from html import escape

import pandas as pd

from orchestration.catalog import catalog
from orchestration.kpis import read_history
from orchestration.report.charts import Chart, calibration_chart, histogram, line_chart
from orchestration.warehouse.base import Warehouse

HISTOGRAM_BINS = 20
KPI_DAYS = 365


def _date(value: object) -> dt.date:
    return pd.Timestamp(value).date()


def segment_sizes(wh: Warehouse) -> dict[str, list[tuple[dt.date, int]]]:
    """Members per segment on every date a stay began or ended (segment_membership_history):
    the running sum of entries minus exits, aggregated in SQL per segment and day."""
    history = catalog().relation("segment_membership_history")
    if not wh.exists(history):
        return {}
    date_type = wh.sql_type("date")
    changes: dict[str, dict[dt.date, int]] = defaultdict(lambda: defaultdict(int))
    for column, sign in (("entered_at", 1), ("exited_at", -1)):
        rows = wh.rows(f"select segment_name, cast({column} as {date_type}) as day, count(*) "
                       f"from {history} where {column} is not null group by segment_name, "
                       f"cast({column} as {date_type})")
        for name, day, count in rows:
            changes[name][_date(day)] += sign * int(count)
    series: dict[str, list[tuple[dt.date, int]]] = {}
    for name in sorted(changes):
        members, points = 0, []
        for day in sorted(changes[name]):
            members += changes[name][day]
            points.append((day, members))
        series[name] = points
    last_day = max((points[-1][0] for points in series.values()), default=None)
    return {name: points + ([(last_day, points[-1][1])] if points[-1][0] != last_day else [])
            for name, points in series.items()}  # every line runs to the latest change


def clv_histogram(wh: Warehouse) -> list[tuple[float, float, int]]:
    """Customers per equal-width bin of predicted_clv_365d (customer_predictions), binned in SQL."""
    predictions = catalog().source("predictions", "customer_predictions")
    if not wh.exists(predictions):
        return []
    low, high = wh.rows(f"select min(predicted_clv_365d), max(predicted_clv_365d) "
                        f"from {predictions}")[0]
    if low is None or high is None:
        return []
    low, high = float(low), float(high)
    width = (high - low) / HISTOGRAM_BINS or 1.0
    rows = wh.rows(
        f"select cast(floor((predicted_clv_365d - %(low)s) / %(width)s) as "
        f"{wh.sql_type('bigint')}) as bin, count(*) from {predictions} "
        "where predicted_clv_365d is not null group by 1",
        {"low": low, "width": width})
    counts: dict[int, int] = defaultdict(int)
    for bin_, count in rows:
        counts[min(int(bin_), HISTOGRAM_BINS - 1)] += int(count)
    return [(low + i * width, low + (i + 1) * width, counts.get(i, 0))
            for i in range(HISTOGRAM_BINS)]


def churn_calibration(wh: Warehouse) -> list[tuple[float, float]]:
    """(mean predicted, observed rate) per score decile of the latest churn evaluation."""
    evaluation = catalog().source("predictions", "churn_model_evaluation")
    if not wh.exists(evaluation):
        return []
    rows = wh.rows(
        f"select score_decile, metric, value from {evaluation} "
        f"where as_of_at = (select max(as_of_at) from {evaluation}) "
        "and metric in ('calibration_mean_predicted', 'calibration_observed_rate')")
    by_decile: dict[int, dict[str, float]] = defaultdict(dict)
    for decile, metric, value in rows:
        if decile is not None and value is not None:
            by_decile[int(decile)][metric] = float(value)
    return [(d["calibration_mean_predicted"], d["calibration_observed_rate"])
            for _, d in sorted(by_decile.items())
            if {"calibration_mean_predicted", "calibration_observed_rate"} <= d.keys()]


def ltv_fit(wh: Warehouse) -> pd.DataFrame:
    """The latest LTV fit (ltv_model_fits): model, parameter, value, log-likelihood, fit case."""
    fits = catalog().source("predictions", "ltv_model_fits")
    if not wh.exists(fits):
        return pd.DataFrame()
    return wh.query(
        f"select model, parameter, value, log_likelihood, n_customers, fit_case from {fits} "
        f"where as_of_at = (select max(as_of_at) from {fits}) order by model, parameter")


def kpi_series(wh: Warehouse) -> dict[str, list[tuple[dt.date, float]]]:
    """Each KPI's values over the last KPI_DAYS days (cdp_kpis, read as the KPI report reads it)."""
    if not wh.exists(catalog().relation("cdp_kpis")):
        return {}
    history = read_history(wh, days=KPI_DAYS).dropna(subset=["kpi_value"])
    return {str(name): [(_date(r.kpi_date), float(r.kpi_value)) for r in frame.itertuples()]
            for name, frame in history.groupby("kpi_name")}


def fit_table(fit: pd.DataFrame) -> str:
    if fit.empty:
        return '<p class="no-data">No data yet: ltv_model_fits has no fit.</p>'
    rows = "".join(
        f"<tr><td>{escape(str(r.model))}</td><td>{escape(str(r.parameter))}</td>"
        f"<td>{'' if pd.isna(r.value) else f'{r.value:.4g}'}</td>"
        f"<td>{r.log_likelihood:.2f}</td><td>{escape(str(r.fit_case))}</td></tr>"
        for r in fit.itertuples())
    return ('<table class="fit"><tr><th>model</th><th>parameter</th><th>value</th>'
            f"<th>log-likelihood</th><th>fit case</th></tr>{rows}</table>")


def kpi_charts(series: dict[str, list[tuple[dt.date, float]]]) -> list[Chart]:
    caption = "Reads cdp_kpis: one value per KPI and day (kpi_date, kpi_value)."
    if not series:
        return [line_chart("KPI trends", caption, {}, "kpi_date", "value")]
    return [line_chart(f"KPI: {name}", caption, {name: points}, "kpi_date", "value")
            for name, points in sorted(series.items())]


def charts(wh: Warehouse) -> list[Chart]:
    """Every chart of the report, in page order."""
    return [
        line_chart("Segment sizes over time",
                   "Reads segment_membership_history: members per segment on each date a stay "
                   "began or ended.", segment_sizes(wh), "date", "members"),
        histogram("Predicted customer lifetime value (365 days)",
                  "Reads predictions.customer_predictions: customers per bin of "
                  "predicted_clv_365d.", clv_histogram(wh), "predicted CLV (365 days)"),
        calibration_chart("Churn model calibration",
                          "Reads predictions.churn_model_evaluation (latest as_of_at): mean "
                          "predicted churn against observed churn rate per score decile; the "
                          "dashed diagonal is perfect calibration.", churn_calibration(wh),
                          "mean predicted churn", "observed churn rate"),
        *kpi_charts(kpi_series(wh)),
    ]


STYLE = ("body{font-family:sans-serif;margin:2em;color:#222}"
         "figure{display:inline-block;vertical-align:top;margin:0 2em 2em 0;max-width:640px}"
         "figcaption{color:#555;font-size:.9em}.no-data{color:#888;font-style:italic}"
         "table.fit{border-collapse:collapse}table.fit td,table.fit th{border:1px solid #ccc;"
         "padding:2px 8px}")


def render(chart_list: list[Chart], fit: pd.DataFrame, generated_at: dt.datetime) -> str:
    """The whole page: every chart, then the LTV fit summary table."""
    body = "".join(chart.html() for chart in chart_list)
    fit_section = ('<section class="ltv-fit"><h2>LTV model fit</h2>' + fit_table(fit) +
                   "<p class=\"caption\">Reads predictions.ltv_model_fits (latest as_of_at).</p>"
                   "</section>")
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f"<title>CDP report</title><style>{STYLE}</style></head><body>"
            f"<h1>CDP report</h1><p>Built {escape(generated_at.isoformat(timespec='seconds'))} "
            f"UTC by the pipeline run.</p>{body}{fit_section}</body></html>")
