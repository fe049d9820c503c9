"""What the warehouse says after a run: latest KPIs, segment sizes, what each sync sent."""

from __future__ import annotations

from orchestration.activation.state import RUNS
from orchestration.catalog import catalog
from orchestration.warehouse.base import Warehouse

# KPIs shown as a percentage (the others are counts or amounts); names from models/marts/kpis.
SHARE_KPIS = ("rate", "share", "completeness", "growth")


def format_kpi(name: str, value: float | None) -> str:
    if value is None:
        return "n/a (nothing to divide by)"
    if any(word in name for word in SHARE_KPIS):
        return f"{100 * value:.1f} %"
    return f"{value:,.2f}" if value % 1 else f"{value:,.0f}"


def _number(value: object) -> float | None:
    """A float, or None for SQL NULL (NaN once it has passed through a DataFrame)."""
    if value is None:
        return None
    number = float(value)
    return None if number != number else number


def kpi_lines(wh: Warehouse) -> list[str]:
    kpis = catalog().relation("cdp_kpis")
    if not wh.exists(kpis):
        return []
    rows = wh.rows(
        f"select kpi_date, kpi_name, cast(kpi_value as {wh.sql_type('double')}) from {kpis} "
        f"where kpi_date = (select max(kpi_date) from {kpis}) order by kpi_name")
    if not rows:
        return []
    return [f"KPIs on {rows[0][0]}:"] + [f"  {name:<32} {format_kpi(name, _number(value)):>14}"
                                         for _, name, value in rows]


def segment_lines(wh: Warehouse) -> list[str]:
    segments = catalog().relation("segments")
    if not wh.exists(segments):
        return []
    rows = wh.rows(f"select segment_name, member_count from {segments} "
                   "order by member_count desc, segment_name")
    return ["Segments (members):"] + [f"  {name:<32} {int(count or 0):>14,}" for name, count in rows]


def sync_lines(wh: Warehouse) -> list[str]:
    if not wh.exists(RUNS):
        return []
    # The latest run per sync: a window function in a subquery (QUALIFY is DuckDB's own).
    rows = wh.rows(f"""
        select sync_name, status, rows_sent, rows_added, rows_changed, rows_removed,
            rows_acknowledged, rows_failed, error
        from (
            select *, row_number() over (partition by sync_name order by started_at desc) as latest
            from {RUNS}
        ) as runs
        where latest = 1
        order by sync_name""")
    lines = ["Syncs (last run):"]
    for name, status, sent, added, changed, removed, acked, failed, error in rows:
        sent, added, changed, removed, acked, failed = (
            int(_number(v) or 0) for v in (sent, added, changed, removed, acked, failed))
        line = (f"  {name:<32} {status}: sent {sent:,} (added {added:,}, changed "
                f"{changed:,}, removed {removed:,}), acknowledged {acked:,}")
        if failed:
            line += f", {failed:,} rejected"
        if status != "success" and error:
            line += f"; {error.splitlines()[0]}"
        lines.append(line)
    return lines


def prediction_lines(wh: Warehouse) -> list[str]:
    predictions = catalog().source("predictions", "customer_predictions")
    if not wh.exists(predictions):
        return []
    count, as_of = wh.rows(f"select count(*), max(as_of_at) from {predictions}")[0]
    return [f"Predictions: {int(count):,} customers, fitted on data before {as_of}"]


def overview(wh: Warehouse) -> list[str]:
    """The at-a-glance lines, each block followed by a blank line; empty before any run."""
    lines: list[str] = []
    for block in (kpi_lines(wh), segment_lines(wh), sync_lines(wh), prediction_lines(wh)):
        if block:
            lines += [*block, ""]
    return lines
