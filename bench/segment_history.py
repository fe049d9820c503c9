"""Benchmark the incremental segment_membership_history against a rebuild from every snapshot.

Writes synthetic daily membership snapshots (int_segment_membership_snapshots) for `--days` days
before today: `--members` (segment, customer) pairs a day, 2 % of them replaced each day. Builds
the history once (not timed), adds today's snapshot and times `dbt run -s
segment_membership_history` incrementally, then with --full-refresh on the same data (DuckDB).

    .venv/bin/python -m bench.segment_history --days 90 --members 300000 --workdir /tmp/seghist

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
SNAPSHOTS = "main_intermediate.int_segment_membership_snapshots"


def insert_day(con: duckdb.DuckDBPyConnection, day: Any, first: int, members: int) -> None:
    """Pairs [first, first + members) are the members on `day`, spread over 12 segments."""
    con.execute(f"insert into {SNAPSHOTS} select ?::date, 'segment_' || (i % 12), 'c' || i "
                "from range(?, ?) as t(i)", [day, first, first + members])


def dbt(path: Path, target: Path, *args: str) -> float:
    """Seconds dbt spent on the model (run_results), a failed run ends the benchmark."""
    env = {**os.environ, "CDP_WAREHOUSE": str(path), "CDP_DBT_TARGET": "duckdb"}
    env.pop("CDP_AS_OF", None)
    result = subprocess.run(
        [DBT, "run", "--select", "segment_membership_history", "--profiles-dir", "profiles",
         "--target-path", str(target), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(result.stdout[-4000:])
    run_results = json.loads((target / "run_results.json").read_text())
    return round(sum(r["execution_time"] for r in run_results["results"]
                     if r["unique_id"].endswith("segment_membership_history")), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--members", type=int, default=300_000)
    parser.add_argument("--churn", type=float, default=0.02)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args()

    work = args.workdir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    path, target = work / "warehouse.duckdb", work / "target"
    report: dict[str, Any] = {"days": args.days, "members_per_day": args.members,
                              "churn_per_day": args.churn, "cores": os.cpu_count()}
    # each day `shift` pairs leave and as many new ones join
    shift = max(1, int(args.members * args.churn))
    today = (datetime.now(timezone.utc) - timedelta(seconds=1)).date()
    con = duckdb.connect(str(path))
    con.execute("create schema main_intermediate")
    con.execute(f"create table {SNAPSHOTS} "
                "(snapshot_date date, segment_name varchar, customer_id varchar)")
    for offset in range(args.days, 0, -1):  # the history up to yesterday, built once
        insert_day(con, today - timedelta(days=offset), (args.days - offset) * shift, args.members)
    report["snapshot_rows"] = con.execute(f"select count(*) from {SNAPSHOTS}").fetchone()[0]
    con.close()
    report["first_build_seconds"] = dbt(path, target)
    con = duckdb.connect(str(path))
    insert_day(con, today, args.days * shift, args.members)
    report["history_rows_before"] = con.execute(
        "select count(*) from main_marts.segment_membership_history").fetchone()[0]
    con.close()
    report["incremental_seconds"] = dbt(path, target)
    report["same_day_rerun_seconds"] = dbt(path, target)
    report["full_rebuild_seconds"] = dbt(path, target, "--full-refresh")
    report["ratio_incremental_to_rebuild"] = round(
        report["incremental_seconds"] / report["full_rebuild_seconds"], 3)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
