"""The real load asset writes the raw tables into the dbt target (PostgreSQL here), like DuckDB.

The sample landing folder (300 customers) plus a file with bad values is loaded by the Dagster
asset `load_landing_files` into a fresh pgserver database and, for reference, into a DuckDB file;
the raw tables, rejects and load log must agree, a second load must load nothing, a broken file
must fail only its own source, and no DuckDB warehouse file may appear on the PostgreSQL target.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import psycopg2
import pytest

from orchestration.ingestion.assets import load_landing_files
from orchestration.ingestion.contract import SOURCES, SOURCES_BY_NAME
from orchestration.ingestion.schema import load_log_table, load_rejects_table, raw_table
from orchestration.warehouse import WarehouseResource

BAD_ORDERS = (
    "order_id,shop_customer_id,email,phone,ordered_at,total_amount,currency,status\n"
    "BAD-1,c-1,bad1@example.com,,not-a-date,10.00,EUR,paid\n"
    "BAD-2,c-2,bad2@example.com,,2025-01-02T03:04:05Z,ten,EUR,paid\n"
    "BAD-3,c-3,bad3@example.com,,2025-01-02T03:04:05Z,12.50,EUR,paid\n"
)
REJECTS_SQL = (f"select _source_file, _source_line, column_name, raw_value, reason "
               f"from {{rejects}} order by 1, 2, 3")


@pytest.fixture
def landing(tmp_path: Path, sample_landing: Path) -> Path:
    folder = tmp_path / "landing"
    shutil.copytree(sample_landing, folder, ignore=shutil.ignore_patterns("_ground_truth"))
    (folder / "shop_orders").mkdir()
    (folder / "shop_orders" / "bad.csv").write_text(BAD_ORDERS, encoding="utf-8")
    return folder


def materialize(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> dg.ExecuteInProcessResult:
    """Run the real load asset with `env` (CDP_*) as the run's environment."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CDP_AS_OF", raising=False)
    return dg.materialize([load_landing_files], resources={"warehouse": WarehouseResource()},
                          raise_on_error=False)


@pytest.fixture
def pg_env(postgres_server, tmp_path: Path, landing: Path) -> dict[str, str]:
    return {**postgres_server.fresh_database("loader"), "CDP_DBT_TARGET": "postgres",
            "CDP_LANDING_DIR": str(landing),
            "CDP_WAREHOUSE": str(tmp_path / "must_not_exist" / "warehouse.duckdb")}


@pytest.fixture
def pg(pg_env: dict[str, str]) -> Iterator[psycopg2.extensions.connection]:
    conn = psycopg2.connect(host=pg_env["CDP_PG_HOST"], port=pg_env["CDP_PG_PORT"],
                            user="postgres", dbname=pg_env["CDP_PG_DATABASE"])
    conn.autocommit = True
    yield conn
    conn.close()


def pg_rows(conn, sql: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def counts_pg(conn) -> dict[str, int]:
    return {s.name: pg_rows(conn, f"select count(*) from {raw_table(s)}")[0][0] for s in SOURCES}


@pytest.fixture
def duckdb_reference(tmp_path: Path, landing: Path,
                     monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, int], list[tuple]]:
    """Row counts and rejects of the same folder loaded by the same asset into DuckDB."""
    path = tmp_path / "reference.duckdb"
    with monkeypatch.context() as patch:
        result = materialize(patch, {"CDP_DBT_TARGET": "duckdb", "CDP_LANDING_DIR": str(landing),
                                     "CDP_WAREHOUSE": str(path)})
    assert result.success
    with duckdb.connect(str(path), read_only=True) as con:
        counts = {s.name: con.execute(f"select count(*) from {raw_table(s)}").fetchone()[0]
                  for s in SOURCES}
        rejects = con.execute(REJECTS_SQL.format(rejects=load_rejects_table())).fetchall()
    return counts, rejects


def test_the_load_asset_writes_postgres_like_duckdb_and_a_second_load_adds_nothing(
    pg_env: dict[str, str], pg, duckdb_reference, monkeypatch: pytest.MonkeyPatch,
) -> None:
    counts, rejects = duckdb_reference
    result = materialize(monkeypatch, pg_env)
    assert result.success
    assert counts_pg(pg) == counts
    assert counts["shop_orders"] > 1  # the sample's orders and the one good bad-file row
    assert pg_rows(pg, REJECTS_SQL.format(rejects=load_rejects_table())) == rejects
    assert {(r[0], r[1], r[2]) for r in rejects if r[0] == "shop_orders/bad.csv"} == {
        ("shop_orders/bad.csv", 2, "ordered_at"), ("shop_orders/bad.csv", 3, "total_amount")}
    reported = {m.asset_key.path[-1]: m.metadata["dagster/row_count"].value
                for m in result.asset_materializations_for_node("load_landing_files")}
    # the phone lookup staging joins is in the target too, one row per distinct raw pair; the
    # load materialises it (staging of declared warehouse inputs with phones waits for it)
    phones = reported.pop("_phone_numbers")
    assert reported == counts
    assert pg_rows(pg, "select count(*) from raw._phone_numbers")[0][0] == phones > 0
    log_rows = pg_rows(pg, f"select count(*) from {load_log_table()}")[0][0]

    again = materialize(monkeypatch, pg_env)
    assert again.success
    assert counts_pg(pg) == counts
    assert pg_rows(pg, f"select count(*) from {load_log_table()}")[0][0] == log_rows
    loaded = {m.asset_key.path[-1]: m.metadata["rows_loaded_this_run"].value
              for m in again.asset_materializations_for_node("load_landing_files")
              if m.asset_key.path[-1] != "_phone_numbers"}
    assert set(loaded.values()) == {0}
    assert not Path(pg_env["CDP_WAREHOUSE"]).exists()
    assert not Path(pg_env["CDP_WAREHOUSE"]).parent.exists()


def test_a_broken_file_keeps_its_sources_rows_in_postgres_and_the_others_load(
    pg_env: dict[str, str], pg, landing: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert materialize(monkeypatch, pg_env).success
    before = counts_pg(pg)
    rejects_before = pg_rows(pg, REJECTS_SQL.format(rejects=load_rejects_table()))
    # a changed orders file that lost a required column, and a new file of another source
    (landing / "shop_orders/bad.csv").write_text("order_id,email\nX-1,x@example.com\n",
                                                 encoding="utf-8")
    tracks = (landing / "segment_tracks.csv").read_text(encoding="utf-8").splitlines()
    (landing / "segment_tracks").mkdir()
    (landing / "segment_tracks" / "more.csv").write_text("\n".join(tracks[:3]) + "\n",
                                                     encoding="utf-8")

    result = materialize(monkeypatch, pg_env)
    assert not result.success
    failure = "\n".join(str(e.event_specific_data.error) for e in result.all_events
                        if e.is_step_failure)
    assert "shop_orders/bad.csv" in failure and "missing required column" in failure
    after = counts_pg(pg)
    assert after["shop_orders"] == before["shop_orders"]
    assert after["segment_tracks"] == before["segment_tracks"] + 2
    assert {k: v for k, v in after.items() if k != "segment_tracks"} == \
        {k: v for k, v in before.items() if k != "segment_tracks"}
    assert pg_rows(pg, REJECTS_SQL.format(rejects=load_rejects_table())) == rejects_before
    assert not Path(pg_env["CDP_WAREHOUSE"]).parent.exists()


def target_state(target: str) -> tuple[dict[str, int], list[tuple], int]:
    """Raw row counts, rejects and load-log size of the target, read through the interface."""
    with WarehouseResource(target=target).open() as wh:
        counts = {s.name: int(wh.scalar(f"select count(*) from {raw_table(s)}")) for s in SOURCES}
        rejects = [(str(f), int(line), str(column), value, str(reason))
                   for f, line, column, value, reason
                   in wh.rows(REJECTS_SQL.format(rejects=load_rejects_table()))]
        log = int(wh.scalar(f"select count(*) from {load_log_table()}"))
    return counts, rejects, log


def test_the_load_asset_on_spark_matches_duckdb_reloads_nothing_and_fails_one_source_alone(
    spark_thrift_server, tmp_path: Path, landing: Path, duckdb_reference,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counts, rejects = duckdb_reference
    spark_thrift_server.drop_schemas("raw", "privacy")
    env = {**spark_thrift_server.env, "CDP_DBT_TARGET": "spark", "CDP_LANDING_DIR": str(landing),
           "CDP_WAREHOUSE": str(tmp_path / "must_not_exist" / "warehouse.duckdb")}
    assert materialize(monkeypatch, env).success
    loaded_counts, loaded_rejects, log = target_state("spark")
    assert loaded_counts == counts
    assert loaded_rejects == [tuple(r) for r in rejects]
    assert not Path(env["CDP_WAREHOUSE"]).parent.exists()

    assert materialize(monkeypatch, env).success  # unchanged folder: nothing new
    assert target_state("spark") == (counts, loaded_rejects, log)

    (landing / "shop_orders" / "bad.csv").write_text("order_id,email\nX-1,x@example.com\n",
                                                     encoding="utf-8")
    tracks = (landing / "segment_tracks.csv").read_text(encoding="utf-8").splitlines()
    (landing / "segment_tracks").mkdir()
    (landing / "segment_tracks" / "more.csv").write_text("\n".join(tracks[:3]) + "\n",
                                                         encoding="utf-8")
    assert not materialize(monkeypatch, env).success
    after, after_rejects, _ = target_state("spark")
    assert after == {**counts, "segment_tracks": counts["segment_tracks"] + 2}
    assert after_rejects == loaded_rejects
    assert not Path(env["CDP_WAREHOUSE"]).parent.exists()


def test_a_write_that_fails_in_postgres_rolls_its_source_back_and_the_others_load(
    pg_env: dict[str, str], pg, landing: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert materialize(monkeypatch, pg_env).success
    before = counts_pg(pg)
    orders = raw_table(SOURCES_BY_NAME["shop_orders"])
    bad_file = f"select order_id from {orders} where _source_file = 'shop_orders/bad.csv'"
    assert pg_rows(pg, bad_file) == [("BAD-3",)]
    rejects_before = pg_rows(pg, REJECTS_SQL.format(rejects=load_rejects_table()))
    log_before = pg_rows(pg, f"select _source_file, content_sha256 from {load_log_table()} "
                             "order by 1")
    # the target refuses the changed file's new rows after its old rows were deleted by key
    with pg.cursor() as cur:
        cur.execute(f"alter table {orders} add constraint no_new "
                    "check (order_id not like 'NEW-%')")
    (landing / "shop_orders" / "bad.csv").write_text(
        BAD_ORDERS.replace("BAD-", "NEW-"), encoding="utf-8")
    tracks = (landing / "segment_tracks.csv").read_text(encoding="utf-8").splitlines()
    (landing / "segment_tracks").mkdir()
    (landing / "segment_tracks" / "more.csv").write_text("\n".join(tracks[:3]) + "\n",
                                                         encoding="utf-8")

    result = materialize(monkeypatch, pg_env)
    assert not result.success
    failure = "\n".join(str(e.event_specific_data.error) for e in result.all_events
                        if e.is_step_failure)
    assert "source shop_orders: writing to postgres failed" in failure
    assert pg_rows(pg, bad_file) == [("BAD-3",)]
    assert pg_rows(pg, REJECTS_SQL.format(rejects=load_rejects_table())) == rejects_before
    after = counts_pg(pg)
    assert after == {**before, "segment_tracks": before["segment_tracks"] + 2}
    log_after = pg_rows(pg, f"select _source_file, content_sha256 from {load_log_table()} "
                            "order by 1")
    assert [r for r in log_after if r[0] != "segment_tracks/more.csv"] == log_before
