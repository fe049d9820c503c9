"""PostgreSQL destination against a real server started by the test (pgserver)."""

from __future__ import annotations

from pathlib import Path

import psycopg2
import pytest

from orchestration.activation.engine import run_sync
from orchestration.activation.state import ROW_ERRORS

pgserver = pytest.importorskip("pgserver")

from activation_support.warehouse import config, customers_warehouse, grant_all  # noqa: E402


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory):
    server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture
def pg(postgres: str):
    conn = psycopg2.connect(postgres)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("drop schema if exists crm cascade")
    yield conn
    conn.close()


@pytest.fixture
def con(tmp_path: Path):
    with customers_warehouse(tmp_path, 30) as connection:
        yield connection


def rows(pg, sql: str) -> list[tuple]:
    with pg.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def destination(postgres: str) -> dict:
    return {"type": "postgres", "dsn": postgres, "schema": "crm", "table": "contacts"}


def test_upsert_creates_schema_and_sends_only_changes(con, pg, postgres, tmp_path) -> None:
    cfg = config(tmp_path, batch_size=7, destination=destination(postgres))
    assert run_sync(con, cfg, "crm").counts.acknowledged == 30
    assert rows(pg, "select count(*) from crm.contacts") == [(30,)]
    types = dict(rows(pg, """select column_name, data_type from information_schema.columns
                             where table_schema = 'crm' and table_name = 'contacts'"""))
    assert types["lifetime_value"] == "numeric" and types["email"] == "text"
    assert rows(pg, "select lifetime_value from crm.contacts where customer_id = 'c000003'") == [
        (pytest.approx(4.5),)]

    assert run_sync(con, cfg, "crm").counts.sent == 0
    con.execute("update main_marts.customers set email = 'new@example.com'"
                " where customer_id = 'c000010'")
    result = run_sync(con, cfg, "crm")
    assert result.counts.changed == 1 and result.counts.sent == 1
    assert rows(pg, "select email from crm.contacts where customer_id = 'c000010'") == [
        ("new@example.com",)]


def test_mirror_deletes_and_consent_revocation_removes(con, pg, postgres, tmp_path) -> None:
    grant_all(con, ["email_marketing"])
    cfg = config(tmp_path, mode="mirror", consent_purposes="email_marketing",
                 destination=destination(postgres))
    run_sync(con, cfg, "crm")
    con.execute("delete from main_marts.customers where customer_id = 'c000001'")
    con.execute("""insert into main_marts.customer_consents values
        ('c000002', 'email_marketing', 'denied', timestamptz '2025-01-01 00:00:00+00')""")
    result = run_sync(con, cfg, "crm")
    assert result.counts.removed == 2
    remaining = {r[0] for r in rows(pg, "select customer_id from crm.contacts")}
    assert len(remaining) == 28 and not remaining & {"c000001", "c000002"}


def test_update_only_and_insert_only(con, pg, postgres, tmp_path) -> None:
    with pg.cursor() as cur:
        cur.execute("create schema crm; create table crm.contacts (customer_id text primary key,"
                    " email text, first_name text, city text, lifetime_value numeric)")
        cur.execute("insert into crm.contacts values ('c000001', 'old', 'Old', 'Old', 0)")
    update_only = config(tmp_path, mode="update_only", destination=destination(postgres))
    run_sync(con, update_only, "crm")
    assert rows(pg, "select customer_id, email from crm.contacts") == [
        ("c000001", "user1@example.com")]

    insert_only = config(tmp_path, mode="insert_only", name="crm_insert",
                         destination=destination(postgres))
    run_sync(con, insert_only, "crm_insert")
    con.execute("update main_marts.customers set city = 'Changed'")
    assert run_sync(con, insert_only, "crm_insert").counts.sent == 0
    assert rows(pg, "select count(*), count(*) filter (where city = 'Changed')"
                    " from crm.contacts") == [(30, 0)]


def test_a_row_the_database_refuses_is_isolated_and_retried(con, pg, postgres, tmp_path) -> None:
    with pg.cursor() as cur:
        cur.execute("create schema crm; create table crm.contacts (customer_id text primary key,"
                    " email text check (email <> 'user13@example.com'), first_name text,"
                    " city text, lifetime_value numeric)")
    cfg = config(tmp_path, batch_size=30, destination=destination(postgres))
    result = run_sync(con, cfg, "crm")
    assert result.counts.failed == 1 and result.counts.acknowledged == 29
    reason = con.execute(f"select reason from {ROW_ERRORS}").fetchone()[0]
    assert "check constraint" in reason
    with pg.cursor() as cur:
        cur.execute("alter table crm.contacts drop constraint contacts_email_check")
    assert run_sync(con, cfg, "crm").counts.acknowledged == 1
    assert rows(pg, "select count(*) from crm.contacts") == [(30,)]


def test_unreachable_postgres_fails_after_retries(con, tmp_path) -> None:
    cfg = config(tmp_path, retry={"max_attempts": 2, "initial_backoff_seconds": 0},
                 destination={"type": "postgres", "dsn": "postgresql://u@127.0.0.1:1/db",
                              "table": "contacts", "connect_timeout_seconds": 1})
    result = run_sync(con, cfg, "crm", sleep=lambda s: None)
    assert result.status == "failed"
    assert "cannot connect to PostgreSQL" in result.error
