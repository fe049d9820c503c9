"""What the warehouse says after a run: latest KPIs, segment sizes, what each sync sent."""

from __future__ import annotations

import duckdb

from orchestration.activation.state import RUNS
from orchestration.catalog import catalog
# KPIs shown as a percentage (the others are counts or amounts); names from models/marts/kpis.
SHARE_KPIS = ("rate", "share", "completeness", "growth")


def _exists(con: duckdb.DuckDBPyConnection, relation: str) -> bool:
    schema, table = relation.split(".")
    return con.execute("select count(*) from information_schema.tables where table_schema = ? "
                       "and table_name = ?", [schema, table]).fetchone()[0] > 0


def format_kpi(name: str, value: float | None) -> str:
    if value is None:
        return "n/a (nothing to divide by)"
    if any(word in name for word in SHARE_KPIS):
        return f"{100 * value:.1f} %"
    return f"{value:,.2f}" if value % 1 else f"{value:,.0f}"


def kpi_lines(con: duckdb.DuckDBPyConnection) -> list[str]:
    kpis = catalog().relation("cdp_kpis")
    if not _exists(con, kpis):
        return []
    rows = con.execute(
        f"select kpi_date, kpi_name, cast(kpi_value as double) from {kpis} "
        f"where kpi_date = (select max(kpi_date) from {kpis}) order by kpi_name").fetchall()
    if not rows:
        return []
    return [f"KPIs on {rows[0][0]}:"] + [f"  {name:<32} {format_kpi(name, value):>14}"
                                         for _, name, value in rows]


def segment_lines(con: duckdb.DuckDBPyConnection) -> list[str]:
    segments = catalog().relation("segments")
    if not _exists(con, segments):
        return []
    rows = con.execute(f"select segment_name, member_count from {segments} "
                       "order by member_count desc, segment_name").fetchall()
    return ["Segments (members):"] + [f"  {name:<32} {count or 0:>14,}" for name, count in rows]


def sync_lines(con: duckdb.DuckDBPyConnection) -> list[str]:
    if not _exists(con, RUNS):
        return []
    rows = con.execute(f"""
        select sync_name, status, rows_sent, rows_added, rows_changed, rows_removed,
            rows_acknowledged, rows_failed, error
        from {RUNS}
        qualify row_number() over (partition by sync_name order by started_at desc) = 1
        order by sync_name""").fetchall()
    lines = ["Syncs (last run):"]
    for name, status, sent, added, changed, removed, acked, failed, error in rows:
        line = (f"  {name:<32} {status}: sent {sent or 0:,} (added {added or 0:,}, changed "
                f"{changed or 0:,}, removed {removed or 0:,}), acknowledged {acked or 0:,}")
        if failed:
            line += f", {failed:,} rejected"
        if status != "success" and error:
            line += f"; {error.splitlines()[0]}"
        lines.append(line)
    return lines


def prediction_lines(con: duckdb.DuckDBPyConnection) -> list[str]:
    predictions = catalog().source("predictions", "customer_predictions")
    if not _exists(con, predictions):
        return []
    count, as_of = con.execute(f"select count(*), max(as_of_at) from {predictions}").fetchone()
    return [f"Predictions: {count:,} customers, fitted on data before {as_of}"]


def overview(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The at-a-glance lines, each block followed by a blank line; empty before any run."""
    lines: list[str] = []
    for block in (kpi_lines(con), segment_lines(con), sync_lines(con), prediction_lines(con)):
        if block:
            lines += [*block, ""]
    return lines
