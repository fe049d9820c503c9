"""Benchmark `dbt build` of the whole project on DuckDB, PostgreSQL (pgserver) and local Spark.

Generates a landing folder, loads it into a DuckDB file with the loader, then per engine:
replicates the raw tables (Postgres, Spark) and times one full `dbt build`. DuckDB gets an empty
`predictions.customer_predictions` (as the replication gives the other engines) so that a plain
`dbt build` resolves every source without running the prediction asset.

    PYTHONPATH=. .venv/bin/python -m bench.portability_build_times --customers 2000 --seed 7 \
        [--engines duckdb,postgres,spark] [--workdir /tmp/portability_bench]

Prints JSON: per engine, replication seconds, dbt build seconds and dbt's PASS/ERROR summary.
Record the figures in docs/benchmarks.md (## Portability) with the command and machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import duckdb

from tools.sample_data import generate
from orchestration.ingestion import load_landing
from orchestration.replication import PREDICTION_PLACEHOLDERS, replicate
from orchestration.settings import PROFILES_DIR, PROJECT_DIR

DBT = str(Path(sys.executable).with_name("dbt"))


def dbt_build(env: dict[str, str], workdir: Path) -> tuple[float, str]:
    command = [DBT, "build", "--no-use-colors", "--project-dir", str(PROJECT_DIR),
               "--profiles-dir", str(PROFILES_DIR), "--target-path", str(workdir / "target"),
               "--log-path", str(workdir / "logs")]
    started = time.monotonic()
    result = subprocess.run(command, env=env, cwd=workdir, capture_output=True, text=True)
    seconds = time.monotonic() - started
    summary = re.findall(r"Done\. (PASS=.*)", result.stdout)
    if result.returncode != 0:
        print(result.stdout[-3000:], file=sys.stderr)
    return seconds, summary[-1] if summary else f"exit {result.returncode}"


def run(engines: list[str], customers: int, seed: int, workdir: Path) -> dict[str, object]:
    landing = workdir / "landing"
    generate(customers=customers, seed=seed, out=landing)
    raw = workdir / "loaded.duckdb"  # not raw.duckdb: catalog `raw` would clash with schema raw
    with duckdb.connect(str(raw)) as con:
        con.execute("set TimeZone = 'UTC'")
        load_landing(landing, con)
        rows = sum(con.execute(f"select count(*) from raw.{name}").fetchone()[0]
                   for (name,) in con.execute(
                       "select table_name from information_schema.tables "
                       "where table_schema = 'raw' and not starts_with(table_name, '_')").fetchall())
    report: dict[str, object] = {"customers": customers, "seed": seed, "raw_rows": rows}
    base = {**os.environ}
    base.pop("CDP_AS_OF", None)
    for engine in engines:
        engine_dir = workdir / engine
        engine_dir.mkdir()
        warehouse = engine_dir / "warehouse.duckdb"
        warehouse.write_bytes(raw.read_bytes())
        env = {**base, "CDP_WAREHOUSE": str(warehouse), "CDP_DBT_TARGET": engine}
        server = None
        replication_seconds = 0.0
        if engine == "duckdb":
            with duckdb.connect(str(warehouse)) as con:
                con.execute("create schema if not exists predictions")
                for table, columns in PREDICTION_PLACEHOLDERS.items():
                    con.execute(f"create table predictions.{table} ({columns})")
        else:
            if engine == "postgres":
                import pgserver
                import psycopg2

                server = pgserver.get_server(engine_dir / "pgdata", cleanup_mode="stop")
                uri = server.get_uri()
                admin = psycopg2.connect(uri)
                admin.autocommit = True
                admin.cursor().execute("create database cdp")
                admin.close()
                env["CDP_PG_HOST"] = parse_qs(urlparse(uri).query)["host"][0]
                env["CDP_PG_DATABASE"] = "cdp"
            if engine == "spark":
                env["CDP_SPARK_WAREHOUSE"] = str(engine_dir / "spark-warehouse")
            saved = dict(os.environ)
            os.environ.update(env)
            try:
                started = time.monotonic()
                replicate(warehouse, engine)
                replication_seconds = time.monotonic() - started
            finally:
                os.environ.clear()
                os.environ.update(saved)
        try:
            seconds, summary = dbt_build(env, engine_dir)
        finally:
            if server is not None:
                server.cleanup()
        report[engine] = {"replication_seconds": round(replication_seconds, 1),
                          "dbt_build_seconds": round(seconds, 1), "dbt": summary}
        print(json.dumps({engine: report[engine]}), file=sys.stderr)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--engines", default="duckdb,postgres,spark")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="portability_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(json.dumps(run(args.engines.split(","), args.customers, args.seed, workdir), indent=2))


if __name__ == "__main__":
    main()
