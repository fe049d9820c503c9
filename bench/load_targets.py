"""Benchmark the landing loader into DuckDB (the file, as before, and through the interface) and PostgreSQL.

    PYTHONPATH=. .venv/bin/python -m bench.load_targets --landing /tmp/x/landing25k \
        [--workdir /tmp/x/load_bench] [--engines duckdb,postgres]

Per engine: seconds of a first load of the folder into a fresh warehouse, seconds of a second
load (every file unchanged: skipped), and the rows loaded. `duckdb_file` is `load_landing` on a
plain DuckDB connection (the code path before issue 17), `duckdb` is `load_landing_into` through
`open_warehouse("duckdb")` (what the asset runs now), `postgres` a fresh pgserver database.
Prints JSON; record the figures in docs/benchmarks.md with the command, data size and machine.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import duckdb

from orchestration.catalog import catalog
from orchestration.ingestion import load_landing
from orchestration.ingestion.reports import LoadReport
from orchestration.ingestion.target import load_landing_into
from orchestration.warehouse import open_warehouse


def _twice(load: Callable[[], LoadReport]) -> dict[str, float | int]:
    started = time.perf_counter()
    first = load()
    middle = time.perf_counter()
    second = load()
    return {"first_load_s": round(middle - started, 2),
            "second_load_s": round(time.perf_counter() - middle, 2),
            "rows_loaded": first.rows_loaded, "rows_rejected": first.rows_rejected,
            "second_rows_loaded": second.rows_loaded}


def bench_duckdb_file(landing: Path, workdir: Path) -> dict[str, float | int]:
    path = workdir / "file.duckdb"

    def load() -> LoadReport:
        with duckdb.connect(str(path)) as con:
            return load_landing(landing, con)

    return _twice(load)


def bench_duckdb(landing: Path, workdir: Path) -> dict[str, float | int]:
    path = workdir / "interface.duckdb"

    def load() -> LoadReport:
        wh = open_warehouse("duckdb", path)
        try:
            return load_landing_into(landing, wh)
        finally:
            wh.close()

    return _twice(load)


def bench_postgres(landing: Path, workdir: Path) -> dict[str, float | int]:
    import pgserver
    import psycopg2

    server = pgserver.get_server(workdir / "pgdata", cleanup_mode="stop")
    try:
        uri = urlparse(server.get_uri())
        admin = psycopg2.connect(server.get_uri())
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("drop database if exists cdp_load_bench")
            cur.execute("create database cdp_load_bench")
        admin.close()
        os.environ.update({"CDP_PG_HOST": parse_qs(uri.query)["host"][0],
                           "CDP_PG_PORT": str(uri.port or 5432), "CDP_PG_USER": "postgres",
                           "CDP_PG_PASSWORD": "", "CDP_PG_DATABASE": "cdp_load_bench"})

        def load() -> LoadReport:
            wh = open_warehouse("postgres")
            try:
                return load_landing_into(landing, wh)
            finally:
                wh.close()

        return _twice(load)
    finally:
        server.cleanup()


BENCHES = {"duckdb_file": bench_duckdb_file, "duckdb": bench_duckdb, "postgres": bench_postgres}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--engines", default="duckdb_file,duckdb,postgres")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="load_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    catalog()  # the dbt manifest is read once, before any timing
    results = {name: BENCHES[name](args.landing.resolve(), workdir)
               for name in args.engines.split(",")}
    print(json.dumps({"landing": str(args.landing), "cores": os.cpu_count(), **results},
                     indent=2))


if __name__ == "__main__":
    main()
