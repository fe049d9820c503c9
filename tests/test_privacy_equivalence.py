"""Erasure by equivalence class: requests written in another spelling than the stored data
(gmail dots and plus, display-name form, +82 instead of the national number) erase every
spelling, in every table, the publication and the serving snapshot, also after late data.

Real loader, real dbt on a real DuckDB file, the real privacy asset and a real files sync."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration import privacy
from orchestration.activation.config import load_config
from orchestration.activation.engine import run_sync
from orchestration.ingestion import load_landing
from orchestration.ingestion.assets import PRIVACY_AT_LOAD
from orchestration.publication import publish, published_tables
from orchestration.serving.snapshot import build_snapshot
from orchestration.warehouse import WarehouseResource
from tests.test_identity_normalisation import BUILD, LANDING, dbt, write_landing

SYNC = "customers_to_files"
# The marts the sync, the publication and the serving snapshot read, and all they need.
SELECT = ["path:models/staging", "+customers", "+customer_identities", "+customer_source_records",
          "+customer_consents", "+customer_events", "+identity_exclusions", "+customer_id_merges"]
MIN = {  # a KR contact known by a national number only, and a ticket with the same email
    "crm_contacts": [
        {"contact_id": "c-min", "email": "min.park@corp.io", "phone": "010-2222-3333",
         "first_name": "Min", "last_name": "Park", "country": "KR",
         "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}],
    "support_tickets": [
        {"ticket_id": "t-min", "requester_email": "Min Park <MIN.PARK@corp.io>",
         "requester_phone": "", "channel": "email", "status": "solved",
         "created_at": "2026-02-04T10:00:00Z", "solved_at": "2026-02-04T11:00:00Z",
         "csat": "4"}],
}
REQUESTS = {"privacy_requests": [
    {"request_id": "dsr-rosa", "identifier_type": "email",
     "identifier_value": "Rosa K <ROSA.KHAN.983+privacy@googlemail.com>",
     "request_type": "erasure", "received_at": "2026-03-01T10:00:00Z"},
    {"request_id": "dsr-min", "identifier_type": "phone", "identifier_value": "+82 10-2222-3333",
     "request_type": "erasure", "received_at": "2026-03-01T10:00:00Z"},
]}
LATE = {  # new spellings of the erased people, and a new device that came with one
    "segment_identifies": [
        {"id": "i-late", "anonymous_id": "anon-late-rosa-9", "user_id": "",
         "timestamp": "2026-03-05T09:00:00Z", "email": "R.O.S.A.K.H.A.N.983+late@gmail.com",
         "phone": "", "first_name": "", "last_name": ""}],
    "shop_orders": [
        {"order_id": "o-late-min", "email": "", "phone": "+82-10-2222-3333",
         "ordered_at": "2026-03-05T10:00:00Z", "total_amount": "7.00", "currency": "USD",
         "status": "completed"}],
}
# Every spelling of the two people, normalised or as written, and their other identifiers.
SPELLINGS = {
    "rosakhan983@gmail.com", "rosak.han983@gmail.com", "rosakhan983+shop@googlemail.com",
    "rosa.khan.983@gmail.com", "rosa.khan.983+privacy@googlemail.com",
    "r.o.s.a.k.h.a.n.983+late@gmail.com", "+821067253994", "010-6725-3994", "+82 10-6725-3994",
    "+82 10 6725 3994", "user-rosa-1", "anon-rosa-0001", "anon-late-rosa-9", "ly-rosa-1",
    "c-rosa", "rosa khan", "min.park@corp.io", "+821022223333", "010-2222-3333",
    "+82 10-2222-3333", "+82-10-2222-3333", "c-min", "min park",
}


def scan(path: Path, values: set[str]) -> dict[str, int]:
    with duckdb.connect(str(path)) as con:
        return privacy.find_traces(con, values)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    settings = {"CDP_WAREHOUSE": str(tmp_path / "warehouse.duckdb"), "CDP_DBT_TARGET": "duckdb",
                "CDP_ACTIVATION_DIR": str(tmp_path / "activation"),
                "CDP_PRIVACY_EXPORT_DIR": str(tmp_path / "exports")}
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CDP_AS_OF", raising=False)
    return {**os.environ, **settings}


def test_an_erasure_in_one_spelling_leaves_no_trace_of_any_spelling_even_after_late_data(
        tmp_path: Path, env: dict[str, str]) -> None:
    landing, warehouse = tmp_path / "landing", Path(env["CDP_WAREHOUSE"])
    write_landing(landing, LANDING, "2026-02")
    write_landing(landing, MIN, "2026-02-min")
    config = load_config()

    # Run 1: the people are built and synced; then the requests arrive and execute.
    with duckdb.connect(str(warehouse)) as con:
        load_landing(landing, con, privacy=PRIVACY_AT_LOAD)
    dbt(env, tmp_path, *BUILD, *SELECT)
    with duckdb.connect(str(warehouse)) as con:
        assert run_sync(con, config, SYNC).ok
        assert privacy.find_traces(con, {"rosak.han983@gmail.com", "010-2222-3333"})
    write_landing(landing, REQUESTS, "2026-03")
    with duckdb.connect(str(warehouse)) as con:
        # the staging views read raw: no dbt run needed to see them
        load_landing(landing, con, privacy=PRIVACY_AT_LOAD)
    result = dg.materialize([privacy.privacy_requests_executed],
                            resources={"warehouse": WarehouseResource(path=str(warehouse))})
    assert result.success
    with duckdb.connect(str(warehouse)) as con:
        statuses = dict(con.execute(f"select request_id, status from {privacy.REQUESTS}"
                                    ).fetchall())
        assert set(statuses.values()) <= {"finished", "partial"}, statuses
        raw_rosa = con.execute("select count(*) from raw.crm_contacts where contact_id = 'c-rosa'"
                               ).fetchone()[0]
        # before any rebuild: the names the erased records gave are gone with the records
        # (int_identity_record_names holds a record's name and no identifier of it)
        assert con.execute("select count(*) from main_intermediate.int_identity_record_names "
                           "where person_name in ('rosa khan', 'min park')").fetchone()[0] == 0
        assert privacy.find_traces(con, SPELLINGS) == {}
    assert raw_rosa == 0

    # Late data in new spellings: purged by the loader itself, before any dbt run.
    write_landing(landing, LATE, "2026-03-late")
    with duckdb.connect(str(warehouse)) as con:
        report = load_landing(landing, con, privacy=PRIVACY_AT_LOAD)
        assert report.late_rows_purged == 2
        assert con.execute("select count(*) from raw.segment_identifies where id = 'i-late'"
                           ).fetchone()[0] == 0
        assert con.execute("select email, phone from raw.shop_orders "
                           "where order_id = 'o-late-min'").fetchall() in ([], [(None, None)])

    # Run 2: rebuild, privacy (confirms nothing is left), sync sends the removal, privacy again.
    dbt(env, tmp_path, *BUILD, *SELECT)
    with duckdb.connect(str(warehouse)) as con:
        privacy.execute_privacy_requests(con)
        sync = run_sync(con, config, SYNC)
        assert sync.ok and sync.counts.removed >= 1
        privacy.execute_privacy_requests(con)
        statuses = dict(con.execute(f"select request_id, status from {privacy.REQUESTS}"
                                    ).fetchall())
        assert statuses == {"dsr-rosa": "finished", "dsr-min": "finished"}
        # the others stay: erasure reached the equivalence class, not more
        assert con.execute("select count(*) from main_marts.customer_identities where "
                           "identifier_value = 'ben.stone@corp.io'").fetchone()[0] == 1
        manifest = json.loads((tmp_path / "dbt_target" / "manifest.json").read_text())
        publish(con, published_tables(manifest), tmp_path / "publication.duckdb")
        build_snapshot(con, tmp_path / "serving.duckdb")
        assert privacy.find_traces(con, SPELLINGS) == {}
    assert scan(tmp_path / "publication.duckdb", SPELLINGS) == {}
    assert scan(tmp_path / "serving.duckdb", SPELLINGS) == {}
