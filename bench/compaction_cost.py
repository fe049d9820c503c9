"""Cost of the warehouse compaction after an erasure, on a generated warehouse of a given size.

Generates the sample data, loads it, runs `dbt build` (without the predictions and the tests),
adds one erasure request and materialises the privacy asset, which compacts the warehouse; prints
each step's seconds and the compaction figures of the asset's metadata.

    .venv/bin/python -m bench.compaction_cost --customers 100000 --workdir /tmp/compaction100k
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args()
    root = args.workdir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    warehouse = root / "warehouse.duckdb"
    os.environ.update({
        "CDP_LANDING_DIR": str(root / "landing"), "CDP_WAREHOUSE": str(warehouse),
        "CDP_SERVING_SNAPSHOT": str(root / "serving.duckdb"),
        "CDP_PUBLICATION": str(root / "publication.duckdb"),
        "CDP_PRIVACY_EXPORT_DIR": str(root / "exports"), "CDP_DBT_TARGET": "duckdb"})
    os.environ.pop("CDP_AS_OF", None)

    import dagster as dg
    import duckdb

    from orchestration import privacy
    from tools.sample_data import generate
    from orchestration.ingestion import load_landing
    from orchestration.settings import PROFILES_DIR, PROJECT_DIR
    from orchestration.warehouse import WarehouseResource

    def timed(name: str, started: float) -> None:
        print(f"{name}: {time.perf_counter() - started:.1f} s", flush=True)

    started = time.perf_counter()
    if not (root / "landing").exists():
        generate(customers=args.customers, seed=42, out=root / "landing")
        timed("generate", started)
    started = time.perf_counter()
    with duckdb.connect(str(warehouse)) as con:
        load_landing(root / "landing", con)
    timed("load", started)
    started = time.perf_counter()
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dbt")), "build", "--exclude",
         "int_customer_predictions+", "resource_type:test", "resource_type:unit_test",
         "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROFILES_DIR),
         "--target", "duckdb", "--target-path", str(root / "dbt_target"),
         "--log-path", str(root / "dbt_logs"), "--quiet"],
        cwd=PROJECT_DIR, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(result.stdout[-2000:] + result.stderr[-2000:])
    timed("dbt build", started)
    with duckdb.connect(str(warehouse)) as con:
        email = con.execute("select identifier_value from main_marts.customer_identities "
                            "where identifier_type = 'email' limit 1").fetchone()[0]
        profiles = con.execute("select count(*) from main_marts.customers").fetchone()[0]
    print(f"profiles: {profiles:,}; warehouse: {warehouse.stat().st_size:,} bytes", flush=True)
    request = root / "landing" / "privacy_requests" / "zz_bench.csv"
    request.parent.mkdir(exist_ok=True)
    with request.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["request_id", "identifier_type", "identifier_value", "request_type",
                         "received_at"])
        writer.writerow(["dsr-bench-compaction", "email", email, "erasure",
                         "2026-10-01T10:00:00Z"])
    with duckdb.connect(str(warehouse)) as con:
        load_landing(root / "landing", con)
    started = time.perf_counter()
    materialized = dg.materialize([privacy.privacy_requests_executed],
                                  resources={"warehouse": WarehouseResource(path=str(warehouse))})
    timed("privacy asset (requests and compaction)", started)
    metadata = materialized.asset_materializations_for_node(
        "privacy__privacy_requests_executed")[0].metadata
    print({key: value.value for key, value in metadata.items() if key.startswith("compaction")})


if __name__ == "__main__":
    main()
