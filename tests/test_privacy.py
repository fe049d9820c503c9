"""Erasure end to end: generated data, an erasure request, late data for the erased person, a sync.

After the runs no table or column of the warehouse holds any identifier of the erased person.
dbt runs as a subprocess with its own target path (other processes may share target/)."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration import privacy
from orchestration.activation.config import load_config
from orchestration.activation.engine import run_sync
from orchestration.ingestion import load_landing
from orchestration.landing_contract import SOURCES_BY_NAME
from orchestration.settings import PROFILES_DIR, PROJECT_DIR
from orchestration.warehouse import WarehouseResource

SYNC = "customers_to_files"


def dbt_build(env: dict[str, str], tmp: Path) -> None:
    dbt = str(Path(sys.executable).with_name("dbt"))
    result = subprocess.run(
        [dbt, "build", "--exclude", "int_customer_predictions+", "resource_type:test",
         "resource_type:unit_test", "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROFILES_DIR),
         "--target", "duckdb", "--target-path", str(tmp / "dbt_target"),
         "--log-path", str(tmp / "dbt_logs"), "--quiet"],
        env=env, cwd=PROJECT_DIR, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def write_csv(path: Path, source: str, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(SOURCES_BY_NAME[source].required)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})


def person_with_email_and_account(landing: Path) -> tuple[str, str]:
    """An email and user id that appear together in identify calls and in orders."""
    con = duckdb.connect()
    row = con.execute(f"""
        select lower(trim(i.email)), i.user_id
        from read_csv('{landing}/segment_identifies.csv', all_varchar = true) i
        join read_csv('{landing}/shop_orders.csv', all_varchar = true) o
            on lower(trim(o.email)) = lower(trim(i.email))
        where i.user_id is not null and i.email like '%@%' and i.phone is not null
        group by all order by count(*) desc, 1 limit 1""").fetchone()
    assert row, "sample data has no identified buyer"
    return row[0], row[1]


def person_values(con: duckdb.DuckDBPyConnection, email: str) -> set[str]:
    """Every identifier of the person's cluster, normalised and as spelled in raw, and the id."""
    cluster = privacy.resolve_cluster(con, "email", email)
    assert cluster.customer_ids, "the person has no profile"
    values = set(cluster.values)
    privacy._load_values(con, cluster.values)
    for source in privacy.identified_sources():
        ids = privacy._matching_record_ids(con, source, cluster.customer_ids)
        if not ids or source.source == "privacy_requests":
            continue
        raw_columns = [c for c in SOURCES_BY_NAME[source.source].known_columns
                       if c in ("email", "phone", "user_id", "anonymous_id", "shop_customer_id",
                                "loyalty_id", "contact_id", "requester_email", "requester_phone",
                                "identifier_value")]
        for column in raw_columns:
            values |= {r[0] for r in con.execute(
                f'select distinct "{column}" from raw."{source.source}" '
                f"where cast({source.raw_record_id_sql} as varchar) in "
                "(select unnest(?::varchar[])) and "
                f'"{column}" is not null', [ids]).fetchall()}
    return {v for v in values if v and len(v) >= 6}


@pytest.fixture
def landing(tmp_path: Path, sample_landing: Path) -> Path:
    copy = tmp_path / "landing"
    shutil.copytree(sample_landing, copy, ignore=shutil.ignore_patterns("_ground_truth"))
    return copy


def test_erasure_leaves_no_trace_even_after_late_data(
        tmp_path: Path, landing: Path, cdp_env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**cdp_env, "CDP_LANDING_DIR": str(landing),
           "CDP_PRIVACY_EXPORT_DIR": str(tmp_path / "exports")}
    monkeypatch.setenv("CDP_PRIVACY_EXPORT_DIR", env["CDP_PRIVACY_EXPORT_DIR"])
    warehouse = Path(env["CDP_WAREHOUSE"])
    email, user_id = person_with_email_and_account(landing)
    write_csv(landing / "privacy_requests" / "requests_extra.csv", "privacy_requests", [
        {"request_id": "dsr-test-access", "identifier_type": "email",
         "identifier_value": email.upper(), "request_type": "access",
         "received_at": "2026-10-01T10:00:00Z"},
        {"request_id": "dsr-test-erase", "identifier_type": "user_id",
         "identifier_value": user_id, "request_type": "erasure",
         "received_at": "2026-10-02T10:00:00Z"},
    ])
    config = load_config()

    # Run 1: load, build, the person reaches a destination, then the requests execute.
    with duckdb.connect(str(warehouse)) as con:
        load_landing(landing, con)
    dbt_build(env, tmp_path)
    with duckdb.connect(str(warehouse)) as con:
        assert run_sync(con, config, SYNC).ok
        values = person_values(con, email)
    result = dg.materialize([privacy.privacy_requests_executed],
                            resources={"warehouse": WarehouseResource(path=str(warehouse))})
    assert result.success

    with duckdb.connect(str(warehouse)) as con:
        statuses = dict(con.execute(
            f"select request_id, status from {privacy.REQUESTS}").fetchall())
        assert statuses["dsr-test-access"] == "finished"
        # removal from the destination is pending until the next sync
        assert statuses["dsr-test-erase"] == "partial"
        log = con.execute(f"select target, action, status, rows_affected from {privacy.LOG} "
                          "where request_id = 'dsr-test-erase'").fetchall()
        targets = {t: (a, s, n) for t, a, s, n in log}
        assert targets["raw.shop_orders"][0] == "null_pii" and targets["raw.shop_orders"][2] > 0
        assert targets["raw.segment_identifies"][0] == "delete"
        assert targets["main_marts.customers"][2] == 1
        assert targets[f"activation:{SYNC}"][1] == "running"
        stored = con.execute(f"select identifier_hash from {privacy.REQUESTS} "
                             "where request_id = 'dsr-test-erase'").fetchone()[0]
        assert stored == privacy.identifier_hash(user_id)
    export = json.loads((tmp_path / "exports" / "dsr-test-access.json").read_text())
    assert {"raw.shop_orders", "main_marts.customers", "main_marts.customer_consents"} \
        <= set(export["tables"])

    # Late data: the erased person shows up again in new files, with a new device.
    new_device = "ffffffff-late-late-late-000000000001"
    write_csv(landing / "segment_identifies" / "late.csv", "segment_identifies", [
        {"id": "late-identify-1", "anonymous_id": new_device, "user_id": "",
         "timestamp": "2026-10-30T10:00:00Z", "email": f"  {email.upper()} ",
         "phone": "", "first_name": "Late", "last_name": "Arrival"}])
    write_csv(landing / "segment_tracks" / "late.csv", "segment_tracks", [
        {"id": "late-track-1", "anonymous_id": new_device, "user_id": user_id,
         "event": "Product Viewed", "timestamp": "2026-10-30T10:01:00Z"}])
    write_csv(landing / "shop_orders" / "late.csv", "shop_orders", [
        {"order_id": "ORD-LATE-1", "shop_customer_id": "", "email": email,
         "phone": "", "ordered_at": "2026-10-30T10:05:00Z", "total_amount": "12.50",
         "currency": "USD", "status": "completed"}])
    values |= {new_device}

    # Run 2: the loader drops the late rows carrying an erased identifier (with the new device
    # on them), then build, privacy, sync (sends the removal).
    with duckdb.connect(str(warehouse)) as con:
        load_landing(landing, con)
        for table, key, value in (("segment_identifies", "id", "late-identify-1"),
                                  ("segment_tracks", "id", "late-track-1"),
                                  ("shop_orders", "order_id", "ORD-LATE-1")):
            assert con.execute(f"select count(*) from raw.{table} where {key} = ?",
                               [value]).fetchone()[0] == 0, f"late row {value} was loaded"
    dbt_build(env, tmp_path)
    with duckdb.connect(str(warehouse)) as con:
        privacy.execute_privacy_requests(con)
        sync = run_sync(con, config, SYNC)
        assert sync.ok and sync.counts.removed >= 1  # the person left the source in run 1
        privacy.execute_privacy_requests(con)  # confirms the destination removal
        statuses = dict(con.execute(
            f"select request_id, status from {privacy.REQUESTS}").fetchall())
        assert statuses["dsr-test-erase"] == "finished"
        # The scan: every table and view, every column.
        assert privacy.find_traces(con, values) == {}


def test_identifier_hash_matches_the_dbt_macro() -> None:
    con = duckdb.connect()
    expected = con.execute("select sha256(? || ?)", [privacy.salt(), "a@b.io"]).fetchone()[0]
    assert privacy.identifier_hash("a@b.io") == expected


def test_request_types() -> None:
    assert privacy.request_action("Erasure") == "erase"
    assert privacy.request_action("suppression") == "suppress"
    assert privacy.request_action("access") == "access"
    assert privacy.request_action("rectify") is None
