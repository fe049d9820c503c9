"""The whole dbt project on PostgreSQL (pgserver) gives DuckDB's answers, first and incremental.

One small generated landing folder (300 customers, seed 7) is loaded into a temporary DuckDB file
by the loader, copied by the replication tool (`python -m orchestration.replication`, the way an
existing DuckDB warehouse moves) into PostgreSQL, and built twice with `dbt build` (models, seeds,
data tests and unit tests), then compared with DuckDB and checked for the PII grants. Spark's dbt
build runs once in the suite, inside the whole `cdp run` on the Spark Thrift server of
tests/test_engines_pipeline.py, which compares its identities with DuckDB's the same way.
Everything an engine writes lives under pytest's tmp dirs; dbt runs from a tmp cwd.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import duckdb
import psycopg2
import pytest

from orchestration.ingestion import load_landing
from orchestration.ingestion.contract import SOURCES
from orchestration.replication import replicate
from orchestration.settings import PROFILES_DIR, PROJECT_DIR

pgserver = pytest.importorskip("pgserver")

DBT = str(Path(sys.executable).with_name("dbt"))
# identifier -> customer id, the public answer of identity resolution on every engine
IDENTITIES_SQL = ("select identifier_type, identifier_value, customer_id "
                  "from {schema}.customer_identities")


@dataclass
class Build:
    """One engine's dbt build: its environment, output and how long it took."""

    env: dict[str, str]
    workdir: Path
    results: list[subprocess.CompletedProcess[str]]
    seconds: list[float]


def dbt(args: list[str], env: dict[str, str], workdir: Path,
        timeout: int = 1200) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run dbt on this project from `workdir` (target, logs, metastore stay there)."""
    command = [DBT, *args, "--no-use-colors", "--project-dir", str(PROJECT_DIR),
               "--profiles-dir", str(PROFILES_DIR), "--target-path", str(workdir / "target"),
               "--log-path", str(workdir / "logs")]
    started = time.monotonic()
    result = subprocess.run(command, env=env, cwd=workdir, capture_output=True, text=True,
                            timeout=timeout)
    return result, time.monotonic() - started


def assert_green(result: subprocess.CompletedProcess[str], engine: str) -> None:
    output = result.stdout + result.stderr
    failures = [line for line in output.splitlines() if "ERROR" in line or "FAIL " in line]
    # dbt's summary after "Completed with N errors" carries the database's own message
    details = output.split("Completed with", 1)[1][:3000] if "Completed with" in output else ""
    assert result.returncode == 0, (f"dbt build on {engine} failed:\n" + "\n".join(failures[-30:])
                                    + "\n" + details)
    assert " ERROR=0 " in output and " SKIP=0 " in output, output[-2000:]


def partition(rows: list[tuple[str, str, str]]) -> set[frozenset[tuple[str, str]]]:
    """Identifiers grouped by customer: the clusters, whatever the customers are called."""
    clusters: dict[str, set[tuple[str, str]]] = {}
    for identifier_type, identifier_value, customer_id in rows:
        clusters.setdefault(customer_id, set()).add((identifier_type, identifier_value))
    return {frozenset(members) for members in clusters.values()}


def raw_row_counts(warehouse: Path) -> dict[str, int]:
    """Rows of each raw table in DuckDB, by relation name."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {f"raw.{source.name}":
                con.execute(f"select count(*) from raw.{source.name}").fetchone()[0]
                for source in SOURCES}


def replicate_raw(warehouse: Path, target: str, env: dict[str, str]) -> dict[str, int]:
    """Copy the DuckDB file's raw tables with the replication tool; rows per raw source table."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        copies = {copy.name: copy.rows for copy in replicate(warehouse, target)}
    return {f"raw.{source.name}": copies[f"raw.{source.name}"] for source in SOURCES}


@pytest.fixture(scope="module")
def raw_warehouse(tmp_path_factory: pytest.TempPathFactory, sample_landing: Path) -> Path:
    """The loader's DuckDB file with raw.* of the sample landing folder (and nothing else)."""
    warehouse = tmp_path_factory.mktemp("portability_duckdb") / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("set TimeZone = 'UTC'")
        load_landing(sample_landing, con)
    return warehouse


def base_env(warehouse: Path, target: str) -> dict[str, str]:
    env = {**os.environ, "CDP_WAREHOUSE": str(warehouse), "CDP_DBT_TARGET": target}
    env.pop("CDP_AS_OF", None)
    return env


@pytest.fixture(scope="module")
def postgres_build(tmp_path_factory: pytest.TempPathFactory, raw_warehouse: Path) -> Iterator[Build]:
    """Replicate into a fresh pgserver database, then `dbt build` twice (first and incremental)."""
    workdir = tmp_path_factory.mktemp("portability_postgres")
    server = pgserver.get_server(workdir / "pgdata", cleanup_mode="stop")
    try:
        uri = urlparse(server.get_uri())
        socket_dir = parse_qs(uri.query)["host"][0]
        admin = psycopg2.connect(server.get_uri())
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("create database cdp")
            # the roles of var pii_access: one may read PII, one only the other columns
            cur.execute("create role cdp_pii_reader login")
            cur.execute("create role cdp_analyst login")
        admin.close()
        env = {**base_env(raw_warehouse, "postgres"), "CDP_PG_HOST": socket_dir,
               "CDP_PG_PORT": str(uri.port or 5432), "CDP_PG_USER": "postgres",
               "CDP_PG_PASSWORD": "", "CDP_PG_DATABASE": "cdp"}
        counts = replicate_raw(raw_warehouse, "postgres", env)
        assert counts == raw_row_counts(raw_warehouse)
        build = Build(env=env, workdir=workdir, results=[], seconds=[])
        access = json.dumps({"pii_access": {"pii_roles": ["cdp_pii_reader"],
                                            "reader_roles": ["cdp_analyst"]}})
        for _ in range(2):
            result, seconds = dbt(["build", "--vars", access], env, workdir)
            build.results.append(result)
            build.seconds.append(seconds)
        yield build
    finally:
        server.cleanup()


def postgres_rows(build: Build, sql: str, user: str = "postgres") -> list[tuple]:
    conn = psycopg2.connect(host=build.env["CDP_PG_HOST"], port=build.env["CDP_PG_PORT"],
                            user=user, dbname="cdp")
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def duckdb_identities(tmp_path_factory: pytest.TempPathFactory, raw_warehouse: Path) -> list[tuple]:
    """DuckDB's answer on the same raw data (identity models only, on a copy of the file)."""
    workdir = tmp_path_factory.mktemp("portability_duckdb_build")
    warehouse = workdir / "warehouse.duckdb"
    warehouse.write_bytes(raw_warehouse.read_bytes())
    result, _ = dbt(["build", "--select", "+customer_identities", "--indirect-selection",
                     "cautious"],
                    base_env(warehouse, "duckdb"), workdir)
    assert_green(result, "duckdb")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(IDENTITIES_SQL.format(schema="main_marts")).fetchall()


def test_full_dbt_build_is_green_on_postgres_and_again_incrementally(postgres_build: Build) -> None:
    first, second = postgres_build.results
    assert_green(first, "postgres (first run)")
    assert_green(second, "postgres (incremental run)")
    print(f"postgres dbt build: {postgres_build.seconds[0]:.1f}s, "
          f"incremental {postgres_build.seconds[1]:.1f}s")
    # The registry carried every id across the second run: nothing merged, split or re-issued.
    assert postgres_rows(postgres_build, "select count(*) from public_marts.customer_id_merges") \
        == [(0,)]
    assert postgres_rows(postgres_build, "select count(*) from public_marts.customer_splits") \
        == [(0,)]
    runs = postgres_rows(postgres_build, "select min(run_number), max(run_number) from "
                         "public_intermediate.int_identity_customer_ids_assigned")
    assert runs == [(2, 2)]
    customers = postgres_rows(postgres_build, "select count(*) from public_marts.customers")
    assert customers[0][0] > 100
    # Same data again: nothing is re-stitched; the incremental timeline keeps one row per event
    assert "int_identity_components: full computation" in first.stdout
    assert "int_identity_components: incremental, 0 node(s)" in second.stdout
    events = postgres_rows(postgres_build, "select count(*), count(distinct event_id), "
                           "count(customer_id) from public_marts.customer_events")
    assert events[0][0] == events[0][1] and events[0][2] > 0.5 * events[0][0]


def test_pii_columns_are_readable_only_by_the_pii_role_on_postgres(postgres_build: Build) -> None:
    assert_green(postgres_build.results[-1], "postgres")
    analyst = "cdp_analyst"
    # non-PII columns of a table with PII, and whole tables without PII, are open to analysts
    counts = postgres_rows(postgres_build, "select count(customer_id), sum(order_count) "
                           "from public_marts.customers", user=analyst)
    assert counts[0][0] > 100
    assert postgres_rows(postgres_build, "select count(*) from public_marts.segments",
                         user=analyst)[0][0] > 0
    for sql in ("select primary_email from public_marts.customers limit 1",
                "select * from public_marts.customers limit 1",
                "select identifier_value from public_marts.customer_identities limit 1"):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            postgres_rows(postgres_build, sql, user=analyst)
    emails = postgres_rows(postgres_build, "select count(primary_email) from "
                           "public_marts.customers", user="cdp_pii_reader")
    assert emails[0][0] > 0


@pytest.mark.slow
def test_identity_clusters_and_ids_are_identical_on_duckdb_and_postgres(
    duckdb_identities: list[tuple], postgres_build: Build,
) -> None:
    postgres = postgres_rows(postgres_build, IDENTITIES_SQL.format(schema="public_marts"))
    expected = partition(duckdb_identities)
    assert len(expected) > 100
    assert partition(postgres) == expected, "postgres clusters differ from duckdb"
    # New customer ids are hashes of the smallest identifier and the run number, and Postgres's
    # second run kept the first run's ids: the ids themselves agree.
    assert set(postgres) == set(duckdb_identities)
