"""Erasure end to end: generated data, an erasure request, late data for the erased person, a sync.

After the runs no table or column of the warehouse holds any identifier of the erased person.
dbt runs as a subprocess with its own target path (other processes may share target/)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from engine_support.pipeline import write_rows
from orchestration import privacy
from orchestration.privacy import steps
from orchestration.activation.config import load_config
from orchestration.activation.engine import run_sync
from orchestration.ingestion import load_landing
from orchestration.ingestion.assets import PRIVACY_AT_LOAD
from orchestration.ingestion.contract import SOURCES_BY_NAME
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
    for source in privacy.identified_sources():
        ids = privacy.cluster_record_ids(con, source, cluster)
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
    write_rows(landing / "privacy_requests" / "requests_extra.csv", "privacy_requests", [
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
        load_landing(landing, con, privacy=PRIVACY_AT_LOAD)
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
    write_rows(landing / "segment_identifies" / "late.csv", "segment_identifies", [
        {"id": "late-identify-1", "anonymous_id": new_device, "user_id": "",
         "timestamp": "2026-10-30T10:00:00Z", "email": f"  {email.upper()} ",
         "phone": "", "first_name": "Late", "last_name": "Arrival"}])
    write_rows(landing / "segment_tracks" / "late.csv", "segment_tracks", [
        {"id": "late-track-1", "anonymous_id": new_device, "user_id": user_id,
         "event": "Product Viewed", "timestamp": "2026-10-30T10:01:00Z"}])
    write_rows(landing / "shop_orders" / "late.csv", "shop_orders", [
        {"order_id": "ORD-LATE-1", "shop_customer_id": "", "email": email,
         "phone": "", "ordered_at": "2026-10-30T10:05:00Z", "total_amount": "12.50",
         "currency": "USD", "status": "completed"}])
    values |= {new_device}

    # Run 2: the loader drops the late rows carrying an erased identifier (with the new device
    # on them), then build, privacy, sync (sends the removal).
    with duckdb.connect(str(warehouse)) as con:
        load_landing(landing, con, privacy=PRIVACY_AT_LOAD)
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
    assert privacy.request_action("rectify") == "rectify"
    assert privacy.request_action("shred") is None


# Batched execution on a small hand-made warehouse: every request of a run together.
SMALL_WAREHOUSE_SQL = """
create schema raw; create schema main_staging; create schema main_marts; create schema activation;
create table raw.privacy_requests as select * from (values
    ('r1', 'email', 'ann@x.io', 'erasure', '2026-01-01', 'a.csv', 1),
    ('r2', 'user_id', 'u1', 'suppression', '2026-01-02', 'a.csv', 2),
    ('r3', 'email', 'bob@x.io', 'erasure', '2026-01-03', 'a.csv', 3),
    ('r4', 'email', 'bob@x.io', 'rectify', '2026-01-04', 'a.csv', 4),
    ('r5', 'email', null, 'erasure', '2026-01-05', 'a.csv', 5),
    ('r6', 'email', 'cy@x.io', 'access', '2026-01-06', 'a.csv', 6)
) as t(request_id, identifier_type, identifier_value, request_type, received_at,
       _source_file, _source_line);
create view main_staging.stg_privacy__requests as
select request_id, identifier_type, lower(identifier_value) as identifier_value, request_type,
       cast(received_at as timestamp) as received_at
from raw.privacy_requests;
create table raw.segment_identifies as select * from (values
    ('i1', 'u1', 'ANN@x.io', 'f.csv', 1), ('i2', 'u2', 'bob@x.io', 'f.csv', 2),
    ('i3', 'u3', 'cy@x.io', 'f.csv', 3)
) as t(id, user_id, email, _source_file, _source_line);
create view main_staging.stg_segment__identifies as
select id as identify_id, user_id, null::varchar as anonymous_id, lower(email) as email,
       null::varchar as phone
from raw.segment_identifies;
create table raw.shop_orders as select * from (values
    ('o1', null, 'ann@x.io', null, 'o.csv', 1), ('o2', null, 'cy@x.io', null, 'o.csv', 2)
) as t(order_id, shop_customer_id, email, phone, _source_file, _source_line);
create view main_staging.stg_shop__orders as
select order_id, shop_customer_id, email, phone from raw.shop_orders;
create table raw._load_rejects as select * from (values
    ('segment_identifies', 'f.csv', 1, 'bad'), ('shop_orders', 'o.csv', 9, ' Bob@x.io '),
    ('crm_contacts', 'c.csv', 1, 'kept')
) as t(source, _source_file, _source_line, raw_value);
create table main_marts.customer_identities as select * from (values
    ('c1', 'email', 'ann@x.io'), ('c1', 'user_id', 'u1'), ('c2', 'email', 'bob@x.io'),
    ('c2', 'user_id', 'u2'), ('c3', 'email', 'cy@x.io'), ('c3', 'user_id', 'u3')
) as t(customer_id, identifier_type, identifier_value);
create table main_marts.customer_source_records as select * from (values
    ('c1', 'segment_identifies', 'i1'), ('c2', 'segment_identifies', 'i2'),
    ('c3', 'segment_identifies', 'i3'), ('c1', 'shop_orders', 'o1'), ('c3', 'shop_orders', 'o2')
) as t(customer_id, source, source_record_id);
create table main_marts.customers as select * from (values
    ('c1', 'ann@x.io'), ('c2', 'bob@x.io'), ('c3', 'cy@x.io')) as t(customer_id, email);
create table activation.sync_state as select * from (values
    ('customers_to_files', 'c1'), ('customers_to_files', 'c3')) as t(sync_name, row_key);
"""


@pytest.fixture
def small_warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> duckdb.DuckDBPyConnection:
    monkeypatch.setenv("CDP_PRIVACY_EXPORT_DIR", str(tmp_path / "exports"))
    con = duckdb.connect(str(tmp_path / "small.duckdb"))
    con.execute(SMALL_WAREHOUSE_SQL)
    yield con
    con.close()


def small_log(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], tuple[str, str, int]]:
    return {(r, t): (a, s, n) for r, t, a, s, n in con.execute(
        f"select request_id, target, action, status, rows_affected from {privacy.LOG}"
    ).fetchall()}


def test_batch_executes_every_request_and_credits_each_one(
        small_warehouse: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    con = small_warehouse
    report = privacy.execute_privacy_requests(con)
    assert [o.request_id for o in report.outcomes] == ["r1", "r2", "r3", "r4", "r5", "r6"]
    statuses = dict(con.execute(f"select request_id, status from {privacy.REQUESTS}").fetchall())
    # c1 is still in a sync state: removal pending; r4 and r5 are invalid and fail alone
    assert statuses == {"r1": "partial", "r2": "partial", "r3": "finished", "r4": "failed",
                        "r5": "failed", "r6": "finished"}
    log = small_log(con)
    # r1 and r2 are the same person: both are credited with the rows they share
    assert log["r1", "main_marts.customers"] == ("delete", "finished", 1)
    assert log["r2", "main_marts.customers"] == ("delete", "finished", 1)
    assert log["r1", "raw.shop_orders"] == ("null_pii", "finished", 1)
    assert log["r1", "raw.segment_identifies"] == ("delete", "finished", 1)
    assert ("r2", "raw.segment_identifies") not in log  # suppression keeps raw data
    assert log["r1", "raw._load_rejects"] == ("delete", "finished", 1)  # the line of i1
    assert log["r3", "raw._load_rejects"] == ("delete", "finished", 1)  # the raw value
    assert log["r1", "activation:customers_to_files"][:2] == ("destination_removal", "running")
    assert log["r4", "request"] == ("validate", "failed", 0)
    assert log["r6", "export"][2] > 0
    assert con.execute("select list(customer_id order by 1) from main_marts.customers"
                       ).fetchone()[0] == ["c3"]
    assert con.execute("select id from raw.segment_identifies").fetchall() == [("i3",)]
    assert con.execute("select email from raw.shop_orders order by order_id").fetchall() == [
        (None,), ("cy@x.io",)]
    assert con.execute("select count(*) from raw._load_rejects").fetchone()[0] == 1
    plain = con.execute("select identifier_value from raw.privacy_requests "
                        "where request_id in ('r1', 'r2', 'r3', 'r6')").fetchall()
    assert all(v.startswith(privacy.HASH_PREFIX) for (v,) in plain)
    suppressed = {h for (h,) in con.execute(
        f"select identifier_hash from {privacy.SUPPRESSION} where suppression_action = 'erase'"
    ).fetchall()}
    assert privacy.identifier_hash("ann@x.io") in suppressed and "ann@x.io" not in suppressed
    sizes = con.execute(f"select customers_in_cluster, identifiers_in_cluster "
                        f"from {privacy.REQUESTS} where request_id = 'r1'").fetchone()
    assert sizes == (1, 2)
    export = json.loads((tmp_path / "exports" / "r6.json").read_text())
    assert export["customer_ids"] == ["c3"]
    assert [r["id"] for r in export["tables"]["raw.segment_identifies"]] == ["i3"]
    assert export["tables"]["main_marts.customers"] == [{"customer_id": "c3",
                                                         "email": "cy@x.io"}]


def test_a_failing_batch_falls_back_to_one_request_at_a_time(
        small_warehouse: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch) -> None:
    con = small_warehouse

    scrub = steps.scrub_derived

    def scrub_failing_for_bob(wh, values: dict[str, set[str]], records=None
                              ) -> dict[str, list[privacy.TargetResult]]:
        # after the batch deleted raw rows: a batch holding bob fails and is rolled back
        if "bob@x.io" in set().union(*values.values()):
            raise RuntimeError("cannot scrub bob")
        return scrub(wh, values, records)

    monkeypatch.setattr(steps, "scrub_derived", scrub_failing_for_bob)
    privacy.execute_privacy_requests(con)
    statuses = dict(con.execute(f"select request_id, status from {privacy.REQUESTS}").fetchall())
    assert statuses == {"r1": "partial", "r2": "finished", "r3": "failed", "r4": "failed",
                        "r5": "failed", "r6": "finished"}
    assert small_log(con)["r3", "request"] == ("erase", "failed", 0)
    # bob's erasure rolled back alone; ann's went through
    assert con.execute("select list(customer_id order by 1) from main_marts.customers"
                       ).fetchone()[0] == ["c2", "c3"]
    assert con.execute("select count(*) from raw.segment_identifies where id = 'i2'"
                       ).fetchone()[0] == 1


def test_an_access_export_reads_tables_not_views_so_a_broken_view_costs_nothing(
        small_warehouse: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """Views hold no rows of their own: the export takes the person's rows from the tables (a
    user's table among them), never from a view, so a view over a dropped table (a user's, or
    one a failed run left behind) neither fails nor shortens an export."""
    con = small_warehouse
    con.execute("create schema reporting; create table reporting.t as select 'cy@x.io' as email;"
                "create view reporting.broken as select email from reporting.t;"
                "drop table reporting.t;"
                "create table reporting.kept as select 'cy@x.io' as email, 7 as visits;"
                "create view reporting.kept_view as select * from reporting.kept")
    privacy.execute_privacy_requests(con)
    statuses = dict(con.execute(f"select request_id, status from {privacy.REQUESTS}").fetchall())
    assert statuses["r6"] == "finished" and statuses["r3"] == "finished"
    assert con.execute(f"select count(*) from {privacy.LOG} where target like 'reporting.%'"
                       ).fetchone()[0] == 0
    export = json.loads((tmp_path / "exports" / "r6.json").read_text())
    assert export["tables"]["main_marts.customers"] == [{"customer_id": "c3",
                                                         "email": "cy@x.io"}]
    assert export["tables"]["reporting.kept"] == [{"email": "cy@x.io", "visits": 7}]
    assert not {"reporting.kept_view", "reporting.broken"} & set(export["tables"])


def test_an_erasure_keeps_the_constraints_of_the_tables_it_deletes_from(
        small_warehouse: duckdb.DuckDBPyConnection) -> None:
    """A mart's enforced contract (primary key, not null) survives the erasure of some of its
    rows: the rows are deleted in place. Rewriting the table without them (as before) dropped
    every constraint of the 42 tables an erasure at 400k customers touched."""
    con = small_warehouse
    con.execute("create table main_marts.customer_notes (customer_id varchar primary key, "
                "email varchar not null, note varchar);"
                "insert into main_marts.customer_notes values ('c1', 'ann@x.io', 'a'), "
                "('c2', 'bob@x.io', 'b'), ('c3', 'cy@x.io', 'c')")

    def constraints() -> list[tuple[str, str]]:
        return con.execute("select constraint_type, constraint_text from duckdb_constraints() "
                           "where table_name = 'customer_notes' order by all").fetchall()

    before = constraints()
    privacy.execute_privacy_requests(con)
    assert [r[0] for r in con.execute("select customer_id from main_marts.customer_notes "
                                      "order by 1").fetchall()] == ["c3"]
    assert constraints() == before and {t for t, _ in before} == {"PRIMARY KEY", "NOT NULL"}
    with pytest.raises(duckdb.ConstraintException):
        con.execute("insert into main_marts.customer_notes values ('c3', 'x@x.io', 'dup')")


HOSTILE_REQUEST_IDS = ("../traversal_poc", "/tmp/abs_traversal_poc", "..", ".hidden",
                       "a/../../b", "nul\x00byte", "x" * 300)


def test_access_exports_stay_in_the_export_folder_and_are_private(
        small_warehouse: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    con = small_warehouse
    con.execute("insert into raw.privacy_requests select unnest(?::varchar[]), 'email', "
                "'cy@x.io', 'access', '2026-02-01', 'b.csv', 1", [list(HOSTILE_REQUEST_IDS)])
    report = privacy.execute_privacy_requests(con)
    outcomes = {o.request_id: o for o in report.outcomes}
    exports = tmp_path / "exports"
    for request_id in HOSTILE_REQUEST_IDS + ("r6",):
        outcome = outcomes[request_id]
        assert outcome.status == "finished", request_id
        path = outcome.export_path
        assert path is not None and path.parent == exports, (request_id, path)
        assert path.stat().st_mode & 0o777 == 0o600, request_id
        assert json.loads(path.read_text())["request_id"] == request_id
    assert outcomes["r6"].export_path == exports / "r6.json"  # a plain id keeps its name
    assert exports.stat().st_mode & 0o777 == 0o700
    assert len(list(exports.iterdir())) == len(HOSTILE_REQUEST_IDS) + 1
    assert not (tmp_path / "traversal_poc.json").exists()
    assert not Path("/tmp/abs_traversal_poc.json").exists()


def test_one_request_is_a_batch_of_one_with_the_same_effects(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def run(name: str, request_ids: list[str]) -> dict[tuple[str, str], tuple[str, str, int]]:
        monkeypatch.setenv("CDP_PRIVACY_EXPORT_DIR", str(tmp_path / name / "exports"))
        (tmp_path / name).mkdir()
        with duckdb.connect(str(tmp_path / name / "small.duckdb")) as con:
            con.execute(SMALL_WAREHOUSE_SQL)
            con.execute("delete from raw.privacy_requests where not list_contains(?, request_id)",
                        [request_ids])
            privacy.execute_privacy_requests(con)
            log = small_log(con)
            assert con.execute("select list(customer_id order by 1) from main_marts.customers"
                               ).fetchone()[0] == ["c2", "c3"]
            return {key: value for key, value in log.items() if key[0] == "r1"}

    alone, together = run("alone", ["r1"]), run("together", ["r1", "r4", "r6"])
    assert alone == together
    assert alone["r1", "raw.segment_identifies"] == ("delete", "finished", 1)
    assert alone["r1", "raw._load_rejects"] == ("delete", "finished", 1)


def test_the_loader_checks_the_raw_identifier_columns_dbt_declares() -> None:
    from orchestration.privacy.sources import raw_identifier_columns

    # same names as staged, and PII columns that staging renames (requester_email -> email)
    assert raw_identifier_columns("shop_orders") == ("shop_customer_id", "email", "phone")
    assert raw_identifier_columns("support_tickets") == ("requester_email", "requester_phone")
    assert raw_identifier_columns("shop_order_lines") == ()


def test_export_file_names_are_never_paths() -> None:
    for request_id in HOSTILE_REQUEST_IDS:
        name = privacy.export_file_name(request_id)
        assert "/" not in name and not name.startswith(".") and ".." not in name
    assert privacy.export_file_name("dsr-2026.04_x") == "dsr-2026.04_x.json"


def test_the_privacy_asset_compacts_the_warehouse_once_after_an_erasure(
        small_warehouse: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    small_warehouse.close()  # the asset must be the only one with the file open
    path = tmp_path / "small.duckdb"
    resources = {"warehouse": WarehouseResource(path=str(path))}

    def compactions() -> int:
        with duckdb.connect(str(path)) as con:
            return con.execute(f"select count(*) from {privacy.LOG} "
                               f"where target = '{privacy.COMPACTION_TARGET}'").fetchone()[0]

    first = dg.materialize([privacy.privacy_requests_executed], resources=resources)
    metadata = first.asset_materializations_for_node("privacy__privacy_requests_executed")[0] \
        .metadata
    assert metadata["compaction"].value == "done"
    assert compactions() == 1
    data = path.read_bytes()
    assert b"ann@x.io" not in data.lower() and b"bob@x.io" not in data.lower()
    assert b"cy@x.io" in data  # live data is still there, uncompressed at this size
    # nothing erased since: the next run does not compact again
    second = dg.materialize([privacy.privacy_requests_executed], resources=resources)
    assert "compaction" not in second.asset_materializations_for_node(
        "privacy__privacy_requests_executed")[0].metadata
    assert compactions() == 1
