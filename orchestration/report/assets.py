"""Dagster asset `report/cdp_report`: writes the static HTML report every run and records its figures.

The page goes to CDP_REPORT_DIR (default `report/` beside the warehouse) as `index.html`, written
to a temporary file first and then renamed, so a failed build keeps the last good report. The
asset's numeric metadata (members per segment, LTV fit figures, churn calibration gap) is plotted
by the Dagster UI over successive materialisations.
"""

import datetime as dt
import os
from pathlib import Path

import dagster as dg
import pandas as pd

from orchestration.predictions import KEYS as PREDICTION_KEYS
from orchestration.report.page import charts, churn_calibration, ltv_fit, render, segment_sizes
from orchestration.settings import report_dir
from orchestration.warehouse import WAREHOUSE_POOL, WarehouseResource
from orchestration.warehouse.base import Warehouse

REPORT_KEY = dg.AssetKey(["report", "cdp_report"])
REPORT_FILE = "index.html"
UPSTREAM = [dg.AssetKey(["segment_membership_history"]), dg.AssetKey(["cdp_kpis"]),
            *PREDICTION_KEYS.values()]


def report_figures(wh: Warehouse, fit: pd.DataFrame) -> dict[str, dg.MetadataValue]:
    """Numeric figures of the run: latest members per segment, LTV fit, churn calibration gap."""
    figures: dict[str, dg.MetadataValue] = {
        f"segment/{name}": dg.MetadataValue.int(points[-1][1])
        for name, points in segment_sizes(wh).items() if points}
    for row in fit.itertuples():
        if not pd.isna(row.value):
            figures[f"ltv/{row.model}.{row.parameter}"] = dg.MetadataValue.float(float(row.value))
        if not pd.isna(row.log_likelihood):
            figures[f"ltv/{row.model}.log_likelihood"] = dg.MetadataValue.float(
                float(row.log_likelihood))
    calibration = churn_calibration(wh)
    if calibration:
        figures["churn/calibration_max_gap"] = dg.MetadataValue.float(
            max(abs(predicted - observed) for predicted, observed in calibration))
    return figures


def write_report(wh: Warehouse, folder: Path) -> tuple[Path, dict[str, dg.MetadataValue]]:
    """Write `folder/index.html` from the warehouse; (its path, the figures and chart counts)."""
    chart_list = charts(wh)
    fit = ltv_fit(wh)
    page = render(chart_list, fit, dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / REPORT_FILE
    partial = path.with_name(f".{REPORT_FILE}.{os.getpid()}.tmp")
    partial.write_text(page, encoding="utf-8")
    partial.replace(path)
    with_data = sum(chart.svg is not None for chart in chart_list)
    return path, {
        **report_figures(wh, fit),
        "charts": dg.MetadataValue.int(len(chart_list)),
        "charts_with_data": dg.MetadataValue.int(with_data),
        "path": dg.MetadataValue.path(str(path)),
    }


@dg.asset(
    key=REPORT_KEY,
    deps=UPSTREAM,
    group_name="publication",
    owners=["team:analytics"],
    kinds={"python", "html"},
    pool=WAREHOUSE_POOL,
    description=("Static HTML report (CDP_REPORT_DIR/index.html, default report/ beside the "
                 "warehouse): segment sizes over time, predicted CLV distribution, churn "
                 "calibration, KPI trends and the LTV fit. docs/operations.md."),
)
def cdp_report(context: dg.AssetExecutionContext,
               warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.open(read_only=True) as wh:
        path, metadata = write_report(wh, report_dir())
    context.log.info(f"report written to {path}")
    return dg.MaterializeResult(metadata=metadata)


REPORT_ASSETS = [cdp_report]
