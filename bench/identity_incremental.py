"""Benchmark incremental re-stitching: the identity step after 1 % new records vs a full rebuild.

Generates landing data (parquet), holds back a random 1 % of the rows of every source, loads the
other 99 % and builds everything the identity and feature models need (not timed). Then it lands
the held-back rows as new files, loads them and times the identity, profile and feature models (dbt
run, DuckDB) twice on the same data:

* incremental: the normal run; the connected-components models re-stitch only the components that
  an added or removed edge touches (their log line says how many nodes);
* full rebuild: the same models with --full-refresh (the connected components are recomputed from
  scratch; the other identity models are full recomputations in both runs).

    .venv/bin/python -m bench.identity_incremental --customers 400000 --workdir /tmp/idinc

Prints JSON (per-model seconds of both runs, nodes re-stitched); record figures in
docs/benchmarks.md (## Identity resolution) with the command and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb

from bench.identity_benchmark import GRAPH_MODELS, SELECT

ROOT = Path(__file__).resolve().parents[1]
DBT = str(ROOT / ".venv" / "bin" / "dbt")
CC_MODELS = ("int_identity_strong_components", "int_identity_components")
# timed with the identity models: the features are incremental within a day (docs/features.md)
FEATURE_MODELS = ("int_transactions_attributed", "int_customers_features_touched",
                  "int_customers_purchases_summarised", "int_customers_web_summarised",
                  "int_customers_email_summarised", "int_customers_support_summarised",
                  "customer_features")


def split_landing(full: Path, landing: Path, later: Path, percent: float, seed: int) -> dict[str, int]:
    """Copy each source's parquet file to `landing` without a random `percent` of its rows, which
    go to `later/<source>/increment.parquet`; rows held back per source."""
    held: dict[str, int] = {}
    con = duckdb.connect()
    con.execute(f"select setseed({seed / 1000})")
    for path in sorted(full.glob("*.parquet")):
        source = path.stem
        con.execute(f"create or replace temp table rows_ as select *, random() as r_ "
                    f"from read_parquet('{path}')")
        keep = percent / 100
        con.execute(f"copy (select * exclude (r_) from rows_ where r_ >= {keep}) "
                    f"to '{landing / path.name}' (format parquet)")
        (later / source).mkdir(parents=True, exist_ok=True)
        con.execute(f"copy (select * exclude (r_) from rows_ where r_ < {keep}) "
                    f"to '{later / source / 'increment.parquet'}' (format parquet)")
        held[source] = con.execute(f"select count(*) from rows_ where r_ < {keep}").fetchone()[0]
    con.close()
    return held


def load(landing: Path, warehouse: Path) -> int:
    from orchestration.ingestion import load_landing
    con = duckdb.connect(str(warehouse))
    try:
        return load_landing(landing, con).rows_loaded
    finally:
        con.close()


def dbt(warehouse: Path, *args: str) -> tuple[float, str, dict[str, float]]:
    """Run dbt (its own target folder beside the warehouse); wall seconds, stdout and per-node
    seconds from run_results.json."""
    env = {**os.environ, "CDP_WAREHOUSE": str(warehouse), "CDP_DBT_TARGET": "duckdb"}
    env.pop("CDP_AS_OF", None)
    target = warehouse.parent / "target"
    started = time.perf_counter()
    result = subprocess.run([DBT, *args, "--profiles-dir", "profiles", "--target-path",
                             str(target)], cwd=ROOT, env=env,
                            capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(result.stdout[-5000:])
    run_results = json.loads((target / "run_results.json").read_text())
    timings = {r["unique_id"].split(".")[-1]: round(r["execution_time"], 2)
               for r in run_results["results"]}
    return wall, result.stdout, timings


def timed_identity_run(warehouse: Path, *extra: str) -> dict[str, Any]:
    wall, stdout, timings = dbt(warehouse, "run", "--select", *SELECT, *FEATURE_MODELS, *extra)
    restitched = {m: int(n) for m, n in re.findall(
        r"connected_components (\w+): incremental, (\d+) node", stdout)}
    return {
        "dbt_wall_seconds": round(wall, 1),
        "graph_models_seconds": round(sum(t for m, t in timings.items() if m in GRAPH_MODELS), 1),
        "connected_components_seconds": round(sum(timings.get(m, 0) for m in CC_MODELS), 1),
        "feature_models_seconds": round(sum(timings.get(m, 0) for m in FEATURE_MODELS), 1),
        "nodes_restitched": restitched,
        "model_seconds": timings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=400_000)
    parser.add_argument("--percent", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args()

    from tools.sample_data import generate
    work = args.workdir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    full, landing, later = work / "generated", work / "landing", work / "later"
    for folder in (full, landing, later):
        folder.mkdir(parents=True)
    warehouse = work / "warehouse.duckdb"
    report: dict[str, Any] = {"generated_customers": args.customers, "percent_new": args.percent,
                              "cores": os.cpu_count()}
    generate(args.customers, args.seed, full, fmt="parquet")
    report["rows_held_back"] = split_landing(full, landing, later, args.percent, args.seed)
    report["rows_loaded_first"] = load(landing, warehouse)
    dbt(warehouse, "seed")  # initial build, not timed
    dbt(warehouse, "run", "--select", "+path:models/marts/identity", "+path:models/marts/customers",
        "+customer_features")

    for source_dir in later.iterdir():
        shutil.move(str(source_dir), str(landing / source_dir.name))
    report["rows_loaded_new"] = load(landing, warehouse)
    con = duckdb.connect(str(warehouse), read_only=True)
    report["nodes_before"] = con.execute(
        "select count(*) from main_intermediate.int_identity_components").fetchone()[0]
    con.close()
    report["incremental"] = timed_identity_run(warehouse)
    con = duckdb.connect(str(warehouse), read_only=True)
    report["customers"], report["feature_customers_recomputed"] = con.execute(
        "select (select count(*) from main_marts.customers), "
        "(select count(*) from main_intermediate.int_customers_features_touched)").fetchone()
    con.close()
    report["full_rebuild"] = timed_identity_run(warehouse, "--full-refresh")
    for part in ("graph_models_seconds", "connected_components_seconds",
                 "feature_models_seconds", "dbt_wall_seconds"):
        report[f"ratio_{part}"] = round(
            report["incremental"][part] / report["full_rebuild"][part], 3)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
