"""The profile API and its serving snapshot, on a small hand-made warehouse."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from fastapi.testclient import TestClient

from orchestration.serving.app import create_app, normalise_identifier
from orchestration.serving.assets import serving_snapshot
from orchestration.serving.keys import KeyConfigError, KeyStore, hash_key
from orchestration.serving.snapshot import build_snapshot
from orchestration.warehouse import WarehouseResource
from security_support.file_modes import files_and_exposed

REPO = Path(__file__).resolve().parent.parent
SUPPORT = "support-secret"
WEBSITE = "website-secret"
NO_SCOPE = "metrics-secret"
KEYS = KeyStore.from_secrets({
    SUPPORT: ("support-desk", {"profiles:read", "pii:read"}),
    WEBSITE: ("website", {"profiles:read"}),
    NO_SCOPE: ("metrics", set()),
})

WAREHOUSE_SQL = """
create schema main_marts;
create schema main_staging;
create schema predictions;
create table main_marts.customers as select * from (values
    ('cus_ann', 'Ann', 'Smith', 'ann@example.com', '+447700900001', 'Leeds', 'GB', 'crm_contacts', 2, 120.50),
    ('cus_bob', 'Bob', 'Jones', 'bob@example.com', '+447700900002', 'York', 'GB', 'shop_orders', 1, 10.00),
    ('cus_cy', 'Cy', null, null, null, null, 'FR', null, 0, 0.00)
) as t(customer_id, first_name, last_name, primary_email, primary_phone, city, country_code,
       first_name_source, order_count, revenue);
create table main_marts.customer_identities as
select identifier_type || ':' || identifier_value as identity_id, customer_id, identifier_type,
       identifier_value, timestamp '2025-01-01' as first_seen_at,
       timestamp '2025-06-01' as last_seen_at
from (values
    ('cus_ann', 'email', 'ann@example.com'),
    ('cus_ann', 'phone', '+447700900001'),
    ('cus_ann', 'user_id', 'u-1'),
    ('cus_ann', 'anonymous_id', 'anon-1'),
    ('cus_ann', 'loyalty_id', 'L001'),
    ('cus_bob', 'email', 'bob@example.com'),
    ('cus_bob', 'user_id', 'u-2'),
    ('cus_cy', 'anonymous_id', 'anon-3')
) as t(customer_id, identifier_type, identifier_value);
create table main_marts.customer_id_merges as
select 'cus_old_ann' as old_customer_id, 'cus_ann' as new_customer_id,
       'cus_ann' as current_customer_id;
create table main_marts.segment_memberships as select * from (values
    ('vip', 'cus_ann', date '2025-05-01'), ('newsletter', 'cus_bob', date '2025-05-02')
) as t(segment_name, customer_id, entered_at);
create table main_marts.customer_features as
select customer_id, 3 as orders_total from main_marts.customers;
create table predictions.customer_predictions as
select customer_id, 0.4 as churn_risk from main_marts.customers;
create table main_marts.customer_events as
select 'shop_orders:' || i as event_id, 'cus_ann' as customer_id, 'shop_orders' as source,
       'order_completed' as event_type, 'online' as channel,
       timestamp '2025-01-01' + to_days(cast(i as integer)) as occurred_at, 10.0 as revenue
from range(60) as r(i)
union all
select 'segment_tracks:b1', 'cus_bob', 'segment_tracks', 'product_added', 'web',
       timestamp '2025-03-01', null;
create table main_staging.stg_privacy__requests as select * from (values
    ('dsr-1', 'email', 'bob@example.com', 'erasure', timestamp '2025-07-01'),
    ('dsr-2', 'email', 'ann@example.com', 'access', timestamp '2025-07-01')
) as t(request_id, identifier_type, identifier_value, request_type, received_at);
"""


@pytest.fixture()
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute(WAREHOUSE_SQL)
    con.close()
    return path


@pytest.fixture()
def snapshot(warehouse: Path, tmp_path: Path) -> Path:
    target = tmp_path / "publication" / "serving.duckdb"
    con = duckdb.connect(str(warehouse))
    try:
        report = build_snapshot(con, target)
    finally:
        con.close()
    assert report.customers == 2 and report.erased_customers == 1
    return target


@pytest.fixture()
def client(snapshot: Path) -> TestClient:
    return TestClient(create_app(snapshot, KEYS, recheck_seconds=0))


def get(client: TestClient, path: str, key: str | None = SUPPORT, **params):
    headers = {"X-API-Key": key} if key else {}
    return client.get(path, headers=headers, params=params)


@pytest.mark.parametrize(("identifier_type", "value"), [
    ("email", "  Ann@Example.COM "),
    ("phone", "0044 7700 900001"),
    ("phone", "+44 (7700) 900-001"),
    ("user_id", "u-1"),
    ("anonymous_id", "anon-1"),
    ("loyalty_id", "L001"),
    ("customer_id", "cus_ann"),
    ("customer_id", "cus_old_ann"),
])
def test_lookup_by_any_identifier(client: TestClient, identifier_type: str, value: str) -> None:
    response = get(client, f"/v1/profiles/{identifier_type}/{value}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["customer_id"] == "cus_ann"
    assert body["attributes"]["country_code"] == "GB"
    assert [s["segment_name"] for s in body["segments"]] == ["vip"]
    assert body["predictions"]["churn_risk"] == pytest.approx(0.4)
    assert body["features"]["orders_total"] == 3
    if value == "cus_old_ann":
        assert body["merged_from_customer_id"] == "cus_old_ann"


def test_recent_events_newest_first_and_limited(client: TestClient) -> None:
    events = get(client, "/v1/profiles/user_id/u-1", events=5).json()["recent_events"]
    assert len(events) == 5
    assert events[0]["occurred_at"] > events[-1]["occurred_at"]
    assert get(client, "/v1/profiles/user_id/u-1", events=500).status_code == 422


def test_api_key_required_and_scoped(client: TestClient) -> None:
    assert get(client, "/v1/profiles/user_id/u-1", key=None).status_code == 401
    assert get(client, "/v1/profiles/user_id/u-1", key="wrong").status_code == 401
    assert get(client, "/v1/profiles/user_id/u-1", key=NO_SCOPE).status_code == 403
    assert get(client, "/health", key=None).status_code == 200


def test_pii_only_with_pii_scope(client: TestClient) -> None:
    public = get(client, "/v1/profiles/user_id/u-1", key=WEBSITE)
    assert public.status_code == 200
    assert public.json()["pii_included"] is False
    for secret in ("Ann", "Smith", "ann@example.com", "+447700900001", "Leeds", "L001", "anon-1"):
        assert secret not in public.text
    assert "first_name_source" not in public.text  # provenance of a PII attribute is PII-adjacent
    personal = get(client, "/v1/profiles/user_id/u-1", key=SUPPORT).json()
    assert personal["personal"]["primary_email"] == "ann@example.com"
    assert {i["identifier_type"] for i in personal["identifiers"]} >= {"email", "loyalty_id"}


@pytest.mark.parametrize(("identifier_type", "value"), [
    ("email", "bob@example.com"),   # the identifier named in the erasure request
    ("user_id", "u-2"),             # another identifier of the same person
    ("customer_id", "cus_bob"),
])
def test_erased_person_is_unreachable(client: TestClient, snapshot: Path,
                                      identifier_type: str, value: str) -> None:
    erased = get(client, f"/v1/profiles/{identifier_type}/{value}")
    unknown = get(client, "/v1/profiles/email/nobody@example.com")
    assert erased.status_code == 404 and unknown.status_code == 404
    assert erased.json() == unknown.json()  # an erasure is not disclosed
    con = duckdb.connect(str(snapshot), read_only=True)
    try:
        assert con.execute("select count(*) from profiles where customer_id = 'cus_bob'").fetchone()[0] == 0
        assert con.execute("select count(*) from identity_lookup where customer_id = 'cus_bob'").fetchone()[0] == 0
    finally:
        con.close()


def test_unknown_identifier_type(client: TestClient) -> None:
    assert get(client, "/v1/profiles/ssn/123").status_code == 422


def test_lookup_by_a_new_identifier_type_of_a_declared_input(
        warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A type only a declaration knows (examples/inputs/app_installs.yml: app_device_id,
    `new_type:`) is in customer_identities after a run; the API looks it up once declared."""
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("insert into main_marts.customer_identities values ('app_device_id:dev-9', "
                    "'cus_ann', 'app_device_id', 'dev-9', timestamp '2025-01-01', "
                    "timestamp '2025-06-01')")
        target = tmp_path / "publication" / "serving.duckdb"
        build_snapshot(con, target)
    finally:
        con.close()
    client = TestClient(create_app(target, KEYS, recheck_seconds=0))
    declared = tmp_path / "declared"
    declared.mkdir()
    monkeypatch.setenv("CDP_INPUTS_DIR", str(declared))
    refused = get(client, "/v1/profiles/app_device_id/dev-9")
    assert refused.status_code == 422  # no declaration: an unknown type
    shutil.copy(REPO / "examples" / "inputs" / "app_installs.yml", declared)
    found = get(client, "/v1/profiles/app_device_id/%20dev-9%20")
    assert found.status_code == 200, found.text
    assert found.json()["customer_id"] == "cus_ann"
    assert get(client, "/v1/profiles/app_device_id/dev-0").status_code == 404
    assert "app_device_id" in get(client, "/v1/profiles/ssn/1").json()["detail"]


def test_new_snapshot_is_served_without_restart(client: TestClient, warehouse: Path,
                                                snapshot: Path) -> None:
    assert get(client, "/v1/profiles/user_id/u-1").status_code == 200
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("insert into main_staging.stg_privacy__requests values "
                    "('dsr-3', 'loyalty_id', 'L001', 'erasure', timestamp '2025-08-01')")
        build_snapshot(con, snapshot)
        build_snapshot(con, snapshot)
        build_snapshot(con, snapshot)
    finally:
        con.close()
    assert get(client, "/v1/profiles/user_id/u-1").status_code == 404
    assert get(client, "/v1/profiles/anonymous_id/anon-3").status_code == 200
    versions = [p for p in snapshot.parent.iterdir() if p.name.startswith(".serving.duckdb.")]
    assert len(versions) <= 3  # the current file and two previous ones


def test_missing_snapshot_is_503(tmp_path: Path) -> None:
    client = TestClient(create_app(tmp_path / "absent.duckdb", KEYS))
    assert get(client, "/v1/profiles/user_id/u-1").status_code == 503


def test_keys_file_errors_name_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "keys.yml"
    path.write_text("keys:\n  - name: website\n    scopes: [profiles:read]\n")
    with pytest.raises(KeyConfigError, match=r"keys.yml: keys.0"):
        KeyStore.from_file(path)
    path.write_text("keys:\n  - name: website\n    key_env: SITE_KEY\n    scopes: [profiles:read]\n"
                    f"  - name: desk\n    key_sha256: {hash_key('desk')}\n"
                    "    scopes: [profiles:read, pii:read]\n")
    with pytest.raises(KeyConfigError, match=r"keys\[0\] \(website\).key_env: .*SITE_KEY"):
        KeyStore.from_file(path, environ={})
    store = KeyStore.from_file(path, environ={"SITE_KEY": "s3cret"})
    assert store.resolve("s3cret").name == "website"
    assert "pii:read" in store.resolve("desk").scopes
    assert store.resolve("nope") is None


def test_normalise_identifier() -> None:
    assert normalise_identifier("email", " A@B.CO ") == "a@b.co"
    assert normalise_identifier("phone", "0044 20 7946 0000") == "+442079460000"
    # national format in the default country (dbt var default_phone_country_code), as staging
    assert normalise_identifier("phone", "(415) 555-0132") == "+14155550132"
    assert normalise_identifier("phone", "+82 10-6725-3994") == "+821067253994"
    assert normalise_identifier("user_id", " U-1 ") == "U-1"


def test_asset_materialises_snapshot(warehouse: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "asset" / "serving.duckdb"
    monkeypatch.setenv("CDP_SERVING_SNAPSHOT", str(target))
    result = dg.materialize([serving_snapshot],
                            resources={"warehouse": WarehouseResource(path=str(warehouse))})
    assert result.success
    metadata = result.asset_materializations_for_node("serving_snapshot")[0].metadata
    assert metadata["dagster/row_count"].value == 2
    assert metadata["erased_customers"].value == 1
    assert target.is_symlink() and target.resolve().exists()


def test_upstream_assets_exist_in_the_code_location() -> None:
    from orchestration.definitions import defs
    from orchestration.privacy import PRIVACY_ASSETS
    from orchestration.serving.assets import PRIVACY_UPSTREAM, UPSTREAM

    keys = {spec.key for spec in defs.resolve_all_asset_specs()}
    assert set(UPSTREAM) <= keys, set(UPSTREAM) - keys
    assert PRIVACY_UPSTREAM in {key for asset in PRIVACY_ASSETS for key in asset.keys}


def test_identifiers_on_the_privacy_suppression_list_hide_the_whole_profile(
        warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestration.privacy import identifier_hash

    monkeypatch.setenv("CDP_PRIVACY_SALT", "test-salt")
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("create schema privacy")
        con.execute("create table privacy.suppression_list as select ? as identifier_hash, "
                    "'anonymous_id' as identifier_type, 'erase' as suppression_action",
                    [identifier_hash("anon-1", "test-salt")])
        report = build_snapshot(con, tmp_path / "suppressed" / "serving.duckdb")
    finally:
        con.close()
    assert report.erased_customers == 2  # bob (erasure request) and ann (suppressed anon-1)
    client = TestClient(create_app(report.path, KEYS))
    assert get(client, "/v1/profiles/email/ann@example.com").status_code == 404
    assert get(client, "/v1/profiles/anonymous_id/anon-3").status_code == 200


def test_event_ids_that_embed_identifiers_need_pii_read(warehouse: Path, tmp_path: Path) -> None:
    """A CRM contact id and a loyalty id inside event ids are identifiers (dbt var identity.sources)."""
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("""insert into main_marts.customer_events values
            ('crm_contacts:003000000000777', 'cus_ann', 'crm_contacts', 'crm_contact_created',
             'crm', timestamp '2025-09-01', null),
            ('loyalty_members:LY000000555', 'cus_ann', 'loyalty_members', 'loyalty_joined',
             'loyalty', timestamp '2025-09-02', null)""")
        report = build_snapshot(con, tmp_path / "ids" / "serving.duckdb")
    finally:
        con.close()
    client = TestClient(create_app(report.path, KEYS, recheck_seconds=0))
    public = get(client, "/v1/profiles/user_id/u-1", key=WEBSITE, events=5)
    assert "003000000000777" not in public.text and "LY000000555" not in public.text
    by_source = {e["source"]: e for e in public.json()["recent_events"]}
    assert by_source["crm_contacts"]["event_id"] is None
    assert by_source["loyalty_members"]["event_type"] == "loyalty_joined"  # the event stays
    assert by_source["shop_orders"]["event_id"].startswith("shop_orders:")  # an order id is no identifier
    personal = get(client, "/v1/profiles/user_id/u-1", key=SUPPORT, events=5).json()
    assert {e["event_id"] for e in personal["recent_events"]} >= {
        "crm_contacts:003000000000777", "loyalty_members:LY000000555"}


def test_snapshot_is_never_readable_by_others_even_while_built(warehouse: Path,
                                                               tmp_path: Path) -> None:
    """A function in a relation the snapshot reads looks at the folder mid-build."""
    target = tmp_path / "private" / "serving.duckdb"
    seen: list[tuple[list[str], list[str]]] = []

    def spy() -> int:
        seen.append(files_and_exposed(target.parent))
        return 3

    con = duckdb.connect(str(warehouse))
    old_umask = os.umask(0o022)  # the usual default: new files 0644
    try:
        con.create_function("spy", spy, [], "INTEGER", side_effects=True)
        con.execute("drop table main_marts.customer_features")
        con.execute("create view main_marts.customer_features as "
                    "select customer_id, spy() as orders_total from main_marts.customers")
        build_snapshot(con, target)
    finally:
        os.umask(old_umask)
        con.close()
    files, exposed = seen[0]
    assert files, "the spy ran before the file existed: it would prove nothing"
    assert exposed == [], exposed
    assert stat.S_IMODE(target.resolve().stat().st_mode) == 0o600
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".build-")]


def snapshot_tables(path: Path) -> dict[str, list[tuple]]:
    """Every table of a snapshot file, rows sorted, JSON documents parsed (3 == 3.0)."""
    import json

    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_name <> '_snapshot' "
            "order by 1").fetchall()]
        out = {}
        for table in tables:
            frame = con.execute(f"select * from {table}").df()
            rows = [tuple(json.loads(v) if name.endswith("_json") and isinstance(v, str)
                          else None if v is None or v != v else v  # NULL / NaN: None
                          for name, v in zip(frame.columns, row))
                    for row in frame.itertuples(index=False)]
            out[table] = sorted(rows, key=repr)
        return out
    finally:
        con.close()


def assert_same_snapshot(built: Path, expected: Path) -> None:
    """Same tables and rows; a differing row is reported field by field."""
    got, want = snapshot_tables(built), snapshot_tables(expected)
    assert got.keys() == want.keys()
    for table in want:
        assert len(got[table]) == len(want[table]), table
        for row, wanted in zip(got[table], want[table]):
            for i, (a, b) in enumerate(zip(row, wanted)):
                assert a == b, (table, row[0], i, a, b)


def test_snapshot_asset_on_postgres_target_serves_what_the_duckdb_one_does(
        warehouse: Path, snapshot: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        postgres_server) -> None:
    """The same marts in a fresh PostgreSQL database (written through the interface): the asset
    reads them there, the snapshot holds the same profiles, the API answers from it, and no
    DuckDB warehouse file is created."""
    from contextlib import closing

    from engine_support.copy_warehouse import copy_tables
    from orchestration.warehouse import open_warehouse

    for key, value in postgres_server.fresh_database("serving").items():
        monkeypatch.setenv(key, value)
    with closing(open_warehouse("postgres")) as pg:
        assert "public_marts.customers" in copy_tables(warehouse, pg)
    absent = tmp_path / "no_warehouse" / "warehouse.duckdb"
    target = tmp_path / "pg" / "serving.duckdb"
    monkeypatch.setenv("CDP_DBT_TARGET", "postgres")
    monkeypatch.setenv("CDP_WAREHOUSE", str(absent))
    monkeypatch.setenv("CDP_SERVING_SNAPSHOT", str(target))

    result = dg.materialize([serving_snapshot], resources={"warehouse": WarehouseResource()})

    assert result.success
    metadata = result.asset_materializations_for_node("serving_snapshot")[0].metadata
    assert metadata["dagster/row_count"].value == 2 and metadata["erased_customers"].value == 1
    assert_same_snapshot(target, snapshot)
    events = get(TestClient(create_app(target, KEYS, recheck_seconds=0)),
                 "/v1/profiles/email/ann@example.com", events=50).json()["recent_events"]
    assert len(events) == 50 and events[0]["event_id"] == "shop_orders:59"
    assert not absent.exists() and not absent.parent.exists()


def test_snapshot_asset_on_spark_target_serves_what_the_duckdb_one_does(
        warehouse: Path, snapshot: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        spark_thrift_server) -> None:
    """As on PostgreSQL, through a real Spark Thrift server."""
    from contextlib import closing

    from engine_support.copy_warehouse import copy_tables
    from orchestration.warehouse import open_warehouse

    for key, value in spark_thrift_server.env.items():
        monkeypatch.setenv(key, value)
    spark_thrift_server.drop_schemas("cdp_marts", "cdp_staging", "predictions", "privacy")
    with closing(open_warehouse("spark")) as spark:
        copy_tables(warehouse, spark)
    absent = tmp_path / "no_warehouse" / "warehouse.duckdb"
    target = tmp_path / "spark" / "serving.duckdb"
    monkeypatch.setenv("CDP_DBT_TARGET", "spark")
    monkeypatch.setenv("CDP_WAREHOUSE", str(absent))
    monkeypatch.setenv("CDP_SERVING_SNAPSHOT", str(target))

    result = dg.materialize([serving_snapshot], resources={"warehouse": WarehouseResource()})

    assert result.success
    assert_same_snapshot(target, snapshot)
    body = get(TestClient(create_app(target, KEYS, recheck_seconds=0)),
               "/v1/profiles/phone/+447700900001").json()
    assert body["customer_id"] == "cus_ann" and body["features"]["orders_total"] == 3
    assert not absent.exists() and not absent.parent.exists()


def test_an_invalid_input_declaration_does_not_stop_the_api_types(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The API's identifier types come from the valid declarations: a broken file next to
    them is skipped (the loader reports it), where it used to raise on every lookup."""
    from orchestration.serving.snapshot import identifier_types

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    shutil.copy(Path(__file__).parent.parent / "examples" / "inputs" / "lead_ads.yml", inputs)
    monkeypatch.setenv("CDP_INPUTS_DIR", str(inputs))
    assert "lead_platform_user_id" in identifier_types() and "email" in identifier_types()
    (inputs / "broken.yml").write_text("name: broken\nkind: nothing_known\n")
    types = identifier_types()
    assert "lead_platform_user_id" in types and "email" in types


def test_unchanged_inputs_keep_the_snapshot_and_a_change_rebuilds_it(
        warehouse: Path, snapshot: Path, tmp_path: Path) -> None:
    """Issue 19: the fingerprint of what the snapshot reads is stored in it; the same inputs
    keep the current version (no new file), a changed relation or an erasure builds a new one,
    equal to a snapshot built from scratch."""
    current = snapshot.resolve()
    con = duckdb.connect(str(warehouse))
    try:
        kept = build_snapshot(con, snapshot)
        assert kept.reused and kept.customers == 2 and kept.erased_customers == 1
        assert snapshot.resolve() == current

        con.execute("update main_marts.customer_features set orders_total = 4 "
                    "where customer_id = 'cus_ann'")
        changed = build_snapshot(con, snapshot)
        assert not changed.reused and snapshot.resolve() != current
        assert_same_snapshot(snapshot, _scratch_snapshot(con, tmp_path / "fresh1"))

        con.execute("insert into main_staging.stg_privacy__requests values "
                    "('dsr-9', 'user_id', 'u-1', 'erasure', timestamp '2025-09-01')")
        erased = build_snapshot(con, snapshot)
    finally:
        con.close()
    assert not erased.reused and erased.customers == 1 and erased.erased_customers == 2
    assert b"ann@example.com" not in snapshot.resolve().read_bytes()


def _scratch_snapshot(con: duckdb.DuckDBPyConnection, folder: Path) -> Path:
    target = folder / "serving.duckdb"
    build_snapshot(con, target)
    return target


def test_a_real_runs_snapshot_is_kept_when_its_inputs_did_not_change(
        scratch_run, sample_pipeline_run: dict[str, str], tmp_path: Path) -> None:
    """The snapshot a whole run built, against a copy of that run's warehouse: built again
    with the asset's arguments from the same marts, it is kept (no second JSON assembly)."""
    from orchestration.catalog import catalog
    from orchestration.publication import published_tables

    built = Path(sample_pipeline_run["CDP_SERVING_SNAPSHOT"]).resolve()
    target = tmp_path / "serving" / "cdp_serving.duckdb"
    target.parent.mkdir()
    shutil.copyfile(built, target.with_name(built.name))
    target.symlink_to(built.name)
    tables = {t.name: t for t in published_tables(dict(catalog().manifest))}
    con = duckdb.connect(str(scratch_run.warehouse))
    try:
        report = build_snapshot(
            con, target, customer_pii=tables["customers"].pii_columns,
            event_record_ids=dict(tables["customer_events"].record_id_columns))
    finally:
        con.close()
    assert report.reused, "the run's warehouse gave a different fingerprint"
    assert target.resolve().name == built.name and report.customers > 0
