"""Benchmark the whole `cdp run` on DuckDB, PostgreSQL (pgserver) and Spark (local Thrift server).

Generates one landing folder, then per engine a fresh warehouse (DuckDB file, pgserver database,
Spark warehouse dir with its own Thrift server) and one timed `cdp run` of the real command, the
way `CDP_DBT_TARGET=<engine> make run` runs it. The run report's step lines are kept.

    PYTHONPATH=. .venv/bin/python -m bench.engine_pipeline_times --customers 25000 --seed 42 \
        [--engines duckdb,postgres,spark] [--workdir /tmp/engine_pipeline]

Prints JSON: per engine, wall seconds of the run, its exit code, the summary line, and whether a
DuckDB warehouse file was left behind. Record the figures in docs/benchmarks.md with the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from tools.sample_data import generate


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(out: Path, landing: Path, target: str) -> dict[str, str]:
    home = out / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CDP_LANDING_DIR": str(landing),
           "CDP_WAREHOUSE": str(out / "warehouse.duckdb"),
           "CDP_PUBLICATION": str(out / "publication.duckdb"),
           "CDP_ACTIVATION_DIR": str(out / "activation"),
           "CDP_SERVING_SNAPSHOT": str(out / "serving.duckdb"),
           "CDP_PRIVACY_EXPORT_DIR": str(out / "exports"),
           "CDP_RUN_LOG": str(out / "cdp-run.log"), "CDP_DBT_TARGET": target,
           "DAGSTER_HOME": str(home)}
    env.pop("CDP_AS_OF", None)
    return env


def timed_run(env: dict[str, str]) -> dict[str, object]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "orchestration.cli", "run"], env=env,
                            capture_output=True, text=True)
    seconds = time.monotonic() - started
    lines = (result.stdout + result.stderr).splitlines()
    summary = next((line for line in lines if line.startswith("Run ")), "")
    if result.returncode != 0:
        print("\n".join(lines[-60:]), file=sys.stderr)
    return {"seconds": round(seconds, 1), "exit": result.returncode, "summary": summary,
            "duckdb_file_left": Path(env["CDP_WAREHOUSE"]).exists()}


def run_engine(engine: str, landing: Path, workdir: Path) -> dict[str, object]:
    out = workdir / engine
    out.mkdir(parents=True, exist_ok=True)
    env = base_env(out, landing, engine)
    if engine == "duckdb":
        return timed_run(env)
    if engine == "postgres":
        import pgserver
        import psycopg2

        server = pgserver.get_server(out / "pgdata", cleanup_mode="stop")
        try:
            uri = server.get_uri()
            admin = psycopg2.connect(uri)
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute("create database cdp")
            admin.close()
            parsed = urlparse(uri)
            env.update({"CDP_PG_HOST": parse_qs(parsed.query)["host"][0],
                        "CDP_PG_PORT": str(parsed.port or 5432), "CDP_PG_USER": "postgres",
                        "CDP_PG_PASSWORD": "", "CDP_PG_DATABASE": "cdp"})
            return timed_run(env)
        finally:
            server.cleanup()
    from orchestration.warehouse.spark_server import SparkServerSettings, ensure_running, stop

    env.update({"CDP_SPARK_WAREHOUSE": str(out / "spark-warehouse"),
                "CDP_SPARK_PORT": str(free_port()), "CDP_SPARK_HOST": "localhost"})
    settings = SparkServerSettings.from_env(env)
    started = time.monotonic()
    ensure_running(settings)
    server_seconds = time.monotonic() - started
    try:
        return {**timed_run(env), "server_start_seconds": round(server_seconds, 1)}
    finally:
        stop(settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=25000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--engines", default="duckdb,postgres,spark")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="engine_pipeline_"))
    landing = workdir / "landing"
    if not landing.exists():
        generate(customers=args.customers, seed=args.seed, out=landing)
    results = {"customers": args.customers, "seed": args.seed, "cores": os.cpu_count(),
               "load_average_before": os.getloadavg()}
    for engine in args.engines.split(","):
        results[engine] = run_engine(engine, landing, workdir)
        print(json.dumps({engine: results[engine]}), flush=True)
    results["load_average_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
