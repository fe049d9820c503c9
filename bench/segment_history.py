"""Benchmark the incremental history tables against a rebuild from every snapshot.

`--table segments`: synthetic daily membership snapshots (int_segment_membership_snapshots) for
`--days` days before today, `--members` (segment, customer) pairs a day, 2 % of them replaced each
day; model segment_membership_history. `--table journeys`: daily journey-stage snapshots
(int_journey_stage_snapshots) of `--members` customers, 2 % changing stage each day; model
customer_journey_transitions. Builds the history once (not timed), adds today's snapshot and times
the model incrementally, again on the same day, then with --full-refresh (DuckDB).

    .venv/bin/python -m bench.segment_history --days 90 --members 300000 --workdir /tmp/seghist
    .venv/bin/python -m bench.segment_history --table journeys --days 90 --members 125000 \
        --workdir /tmp/journeyhist

Prints JSON; record figures in docs/benchmarks.md (## Segments) with the command and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb

ROOT = Path(__file__).resolve().parents[1]
DBT = str(ROOT / ".venv" / "bin" / "dbt")


TABLES: dict[str, dict[str, str]] = {
    "segments": {
        "snapshots": "main_intermediate.int_segment_membership_snapshots",
        "columns": "snapshot_date date, segment_name varchar, customer_id varchar",
        "model": "segment_membership_history",
        "history": "main_marts.segment_membership_history",
    },
    "journeys": {
        "snapshots": "main_intermediate.int_journey_stage_snapshots",
        "columns": "snapshot_date date, customer_id varchar, journey_stage varchar",
        "model": "customer_journey_transitions",
        "history": "main_marts.customer_journey_transitions",
    },
}


def insert_day(con: duckdb.DuckDBPyConnection, table: dict[str, str], day: Any, index: int,
               shift: int, members: int) -> None:
    """The snapshot of day number `index` (0 = the oldest)."""
    if table["model"] == "segment_membership_history":
        # each day `shift` pairs leave and as many new ones join, over 12 segments
        first = index * shift
        con.execute(f"insert into {table['snapshots']} select ?::date, 'segment_' || (i % 12), "
                    "'c' || i from range(?, ?) as t(i)", [day, first, first + members])
    else:
        # customer i moves to the next stage when (index + i) passes a multiple of 50: 2 % a day
        con.execute(f"insert into {table['snapshots']} select ?::date, 'c' || i, "
                    "['awareness', 'consideration', 'purchase', 'retention', 'loyalty']"
                    "[1 + ((i + (? + i) // 50) % 5)::integer] from range(0, ?) as t(i)",
                    [day, index, members])


def dbt(path: Path, target: Path, model: str, *args: str) -> float:
    """Seconds dbt spent on the model (run_results), a failed run ends the benchmark."""
    env = {**os.environ, "CDP_WAREHOUSE": str(path), "CDP_DBT_TARGET": "duckdb"}
    env.pop("CDP_AS_OF", None)
    result = subprocess.run(
        [DBT, "run", "--select", model, "--profiles-dir", "profiles",
         "--target-path", str(target), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(result.stdout[-4000:])
    run_results = json.loads((target / "run_results.json").read_text())
    return round(sum(r["execution_time"] for r in run_results["results"]
                     if r["unique_id"].endswith(model)), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", choices=sorted(TABLES), default="segments")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--members", type=int, default=300_000)
    parser.add_argument("--churn", type=float, default=0.02)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args()

    work = args.workdir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    path, target = work / "warehouse.duckdb", work / "target"
    table = TABLES[args.table]
    model = table["model"]
    report: dict[str, Any] = {"model": model, "days": args.days, "members_per_day": args.members,
                              "churn_per_day": args.churn, "cores": os.cpu_count()}
    shift = max(1, int(args.members * args.churn))
    today = (datetime.now(timezone.utc) - timedelta(seconds=1)).date()
    con = duckdb.connect(str(path))
    con.execute("create schema main_intermediate")
    con.execute(f"create table {table['snapshots']} ({table['columns']})")
    for offset in range(args.days, 0, -1):  # the history up to yesterday, built once
        insert_day(con, table, today - timedelta(days=offset), args.days - offset, shift,
                   args.members)
    report["snapshot_rows"] = con.execute(
        f"select count(*) from {table['snapshots']}").fetchone()[0]
    con.close()
    report["first_build_seconds"] = dbt(path, target, model)
    con = duckdb.connect(str(path))
    insert_day(con, table, today, args.days, shift, args.members)
    report["history_rows_before"] = con.execute(
        f"select count(*) from {table['history']}").fetchone()[0]
    con.close()
    report["incremental_seconds"] = dbt(path, target, model)
    report["same_day_rerun_seconds"] = dbt(path, target, model)
    report["full_rebuild_seconds"] = dbt(path, target, model, "--full-refresh")
    report["ratio_incremental_to_rebuild"] = round(
        report["incremental_seconds"] / report["full_rebuild_seconds"], 3)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
