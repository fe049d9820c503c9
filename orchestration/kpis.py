"""Dagster asset showing the CDP KPIs (dbt model cdp_kpis) in the UI: latest values and trend.

Each KPI's latest value is a numeric metadata entry, so the asset's page plots it across
materialisations; a Markdown table gives the value a week and a month earlier, another the latest
campaigns of campaign_performance.
"""

import datetime as dt

import dagster as dg
import pandas as pd

from orchestration.catalog import catalog
from orchestration.warehouse import WAREHOUSE_POOL, Warehouse, WarehouseResource

KPI_MODEL = dg.AssetKey(["cdp_kpis"])
CAMPAIGN_MODEL = dg.AssetKey(["campaign_performance"])
CAMPAIGN_COLUMNS = ["campaign_performance_id", "delivered", "open_rate", "click_to_open_rate",
                    "conversion_rate", "click_through_rate", "cost_per_click"]


def kpi_table() -> str:
    """The relation of the dbt model cdp_kpis (looked up at call time, from the manifest)."""
    return catalog().relation("cdp_kpis")


def kpi_trend(history: pd.DataFrame) -> pd.DataFrame:
    """Per KPI: the latest value and the values on or before 7 and 30 days earlier."""
    rows = []
    for name, frame in history.sort_values("kpi_date").groupby("kpi_name"):
        latest = frame.iloc[-1]
        row = {"kpi_name": name, "kpi_date": latest["kpi_date"], "value": latest["kpi_value"]}
        for days in (7, 30):
            earlier = frame[frame["kpi_date"] <= latest["kpi_date"] - dt.timedelta(days=days)]
            row[f"value_{days}d_ago"] = earlier.iloc[-1]["kpi_value"] if len(earlier) else None
        rows.append(row)
    return pd.DataFrame(rows)


def _number(value: object) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def read_history(wh: Warehouse, days: int = 60) -> pd.DataFrame:
    """The KPI rows of the last `days` days before the latest KPI date (portable SQL: the start
    date is computed here and passed as a parameter)."""
    table = kpi_table()
    latest = wh.scalar(f"select max(kpi_date) from {table}")
    if latest is None:
        return pd.DataFrame(columns=["kpi_date", "kpi_name", "kpi_value"])
    since = pd.Timestamp(latest).date() - dt.timedelta(days=days)
    return wh.query(
        f"select kpi_date, kpi_name, cast(kpi_value as {wh.sql_type('double')}) as kpi_value "
        f"from {table} where kpi_date >= %(since)s", {"since": since})


def read_campaigns(wh: Warehouse, limit: int = 10) -> pd.DataFrame:
    """The `limit` campaigns of campaign_performance most recently started (none when the mart
    is not built)."""
    table = catalog().relation("campaign_performance")
    if not wh.exists(table):
        return pd.DataFrame(columns=CAMPAIGN_COLUMNS)
    frame = wh.query(f"select {', '.join(CAMPAIGN_COLUMNS)}, first_activity_at from {table}")
    frame = frame.sort_values("first_activity_at", ascending=False, na_position="last")
    return frame.head(limit)[CAMPAIGN_COLUMNS]


def campaign_table(campaigns: pd.DataFrame) -> str:
    """Markdown table of the campaigns (rates as percentages, blank where they do not apply)."""
    lines = ["| campaign | delivered | open | click-to-open | conversion | CTR | CPC |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in campaigns.itertuples(index=False):
        delivered = _number(row.delivered)
        rates = [_number(v) for v in (row.open_rate, row.click_to_open_rate,
                                      row.conversion_rate, row.click_through_rate)]
        cpc = _number(row.cost_per_click)
        cells = ["" if delivered is None else f"{delivered:,.0f}"]
        cells += ["" if v is None else f"{v:.1%}" for v in rates]
        cells.append("" if cpc is None else f"{cpc:,.2f}")
        lines.append(f"| {row.campaign_performance_id} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dg.asset(
    key=dg.AssetKey(["kpis", "cdp_kpi_report"]),
    deps=[KPI_MODEL, CAMPAIGN_MODEL],
    group_name="segments",
    owners=["team:marketing-ops"],
    kinds={"python", "duckdb"},
    pool=WAREHOUSE_POOL,
    description="Latest CDP KPIs and their trend (from cdp_kpis), plotted in the Dagster UI.",
)
def cdp_kpi_report(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.open(read_only=True) as wh:
        history = read_history(wh)
        campaigns = read_campaigns(wh)
    if history.empty:
        return dg.MaterializeResult(metadata={"kpis": dg.MetadataValue.int(0)})
    history["kpi_date"] = pd.to_datetime(history["kpi_date"]).dt.date
    trend = kpi_trend(history)
    metadata: dict[str, dg.MetadataValue] = {
        f"kpi/{row.kpi_name}": dg.MetadataValue.float(value)
        for row in trend.itertuples()
        if (value := _number(row.value)) is not None
    }
    table = ["| KPI | latest | 7 days ago | 30 days ago |", "| --- | ---: | ---: | ---: |"]
    for row in trend.itertuples():
        cells = [_number(v) for v in (row.value, row.value_7d_ago, row.value_30d_ago)]
        table.append(f"| {row.kpi_name} | " + " | ".join(
            "" if v is None else f"{v:,.4f}" for v in cells) + " |")
    metadata["kpi_date"] = dg.MetadataValue.text(str(trend["kpi_date"].max()))
    metadata["trend"] = dg.MetadataValue.md("\n".join(table))
    if len(campaigns):
        metadata["campaigns"] = dg.MetadataValue.md(campaign_table(campaigns))
    return dg.MaterializeResult(metadata=metadata)


KPI_ASSETS = [cdp_kpi_report]
