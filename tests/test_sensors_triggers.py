"""Trigger audiences (orchestration/triggers/, triggers/*.yml): who fires, when, stable keys."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from orchestration.triggers import (
    TABLE, TriggerError, load_triggers, refresh_trigger_events, trigger_events)
from orchestration.warehouse import WarehouseResource

NOW = dt.datetime(2026, 3, 10, 12, 0)

EVENTS = [
    # ann: cart 2 hours ago, no purchase since -> cart_abandoned_1h
    ("ann", "t:1", "product added", NOW - dt.timedelta(hours=2)),
    # bob: cart 2 hours ago, bought 30 minutes later -> no cart trigger; a first purchase today
    ("bob", "t:2", "product added", NOW - dt.timedelta(hours=2)),
    ("bob", "shop_orders:o2", "order_completed", NOW - dt.timedelta(hours=1, minutes=30)),
    # cy: cart 20 minutes ago -> not yet
    ("cy", "t:3", "product added", NOW - dt.timedelta(minutes=20)),
    # dee: cart 10 days ago -> outside the look-back window
    ("dee", "t:4", "product added", NOW - dt.timedelta(days=10)),
    # eve: first ever purchase this morning -> first_purchase_today
    ("eve", "pos_transactions:p5", "store_purchase", NOW - dt.timedelta(hours=3)),
    # fay: bought before, bought again today -> not a first purchase
    ("fay", "shop_orders:o6", "order_shipped", NOW - dt.timedelta(days=40)),
    ("fay", "shop_orders:o7", "order_completed", NOW - dt.timedelta(hours=1)),
    # hal: a cancelled order is no purchase (var features.excluded_order_statuses), nor is a
    # tracked "Order Completed" (web telemetry; the features count shop orders and store sales)
    ("hal", "shop_orders:o8", "order_cancelled", NOW - dt.timedelta(hours=2)),
    ("hal", "segment_tracks:t10", "order completed", NOW - dt.timedelta(hours=2)),
    # gus: event after `now` is ignored (point in time)
    ("gus", "t:8", "product added", NOW + dt.timedelta(hours=5)),
]


@pytest.fixture()
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema main_marts")
    con.execute("create table main_marts.customer_events (customer_id varchar, event_id varchar, "
                "event_type varchar, occurred_at timestamp)")
    con.executemany("insert into main_marts.customer_events values (?, ?, ?, ?)", EVENTS)
    con.close()
    return path


def fired(path: Path, now: dt.datetime = NOW) -> set[tuple[str, str]]:
    con = duckdb.connect(str(path))
    try:
        refresh_trigger_events(con, now)
        return set(con.execute(f"select trigger_name, customer_id from {TABLE}").fetchall())
    finally:
        con.close()


def test_who_fires(warehouse: Path) -> None:
    assert fired(warehouse) == {
        ("cart_abandoned_1h", "ann"),
        ("first_purchase_today", "bob"),
        ("first_purchase_today", "eve"),
    }


def test_keys_are_stable_so_an_insert_only_sync_sends_each_firing_once(warehouse: Path) -> None:
    con = duckdb.connect(str(warehouse))
    try:
        refresh_trigger_events(con, NOW)
        first = set(con.execute(f"select trigger_event_id from {TABLE}").fetchall())
        refresh_trigger_events(con, NOW + dt.timedelta(minutes=10))
        second = set(con.execute(f"select trigger_event_id from {TABLE}").fetchall())
        assert first == second
        # A new cart later is a new episode: it fires again, under a new key.
        con.execute("insert into main_marts.customer_events values "
                    "('ann', 't:9', 'product added', ?)", [NOW + dt.timedelta(hours=1)])
        refresh_trigger_events(con, NOW + dt.timedelta(hours=3))
        third = set(con.execute(f"select trigger_event_id from {TABLE} "
                                "where customer_id = 'ann'").fetchall())
        assert third == {("cart_abandoned_1h:ann:t:9",)}
    finally:
        con.close()


def test_cy_fires_once_the_hour_has_passed(warehouse: Path) -> None:
    assert ("cart_abandoned_1h", "cy") in fired(warehouse, NOW + dt.timedelta(hours=1))


def test_asset(warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDP_AS_OF", "2026-03-10")  # evaluated at 23:59:59 that day
    result = dg.materialize([trigger_events],
                            resources={"warehouse": WarehouseResource(path=str(warehouse))})
    assert result.success
    metadata = result.asset_materializations_for_node("triggers__trigger_events")[0].metadata
    assert metadata["firings_first_purchase_today"].value == 2        # bob, eve
    assert metadata["firings_cart_abandoned_1h"].value == 3           # ann, cy, gus by 23:59


# --- declared triggers (triggers/*.yml) ----------------------------------------------------------

def visit_firings(path: Path, now: dt.datetime) -> list[tuple[str, dt.datetime]]:
    con = duckdb.connect(str(path))
    try:
        refresh_trigger_events(con, now)
        return con.execute(f"select trigger_event_id, triggered_at from {TABLE} where "
                           "trigger_name = 'site_visit_no_purchase_30m' order by 1").fetchall()
    finally:
        con.close()


def test_site_visit_fires_once_per_visit_after_the_dwell(warehouse: Path) -> None:
    visit = NOW + dt.timedelta(hours=6)  # after every EVENTS row
    con = duckdb.connect(str(warehouse))
    con.executemany("insert into main_marts.customer_events values (?, ?, ?, ?)", [
        ("kim", "segment_pages:v1", "page_view", visit - dt.timedelta(minutes=5)),
        ("kim", "segment_pages:v2", "page_view", visit),  # the visit's last page
        # lou viewed, then bought 10 minutes later: no message
        ("lou", "segment_pages:v3", "page_view", visit),
        ("lou", "pos_transactions:p9", "store_purchase", visit + dt.timedelta(minutes=10)),
    ])
    con.close()
    assert visit_firings(warehouse, visit + dt.timedelta(minutes=20)) == []  # dwell not over
    fired_at = [("site_visit_no_purchase_30m:kim:segment_pages:v2",
                 visit + dt.timedelta(minutes=30))]
    assert visit_firings(warehouse, visit + dt.timedelta(minutes=31)) == fired_at
    assert visit_firings(warehouse, visit + dt.timedelta(minutes=50)) == fired_at  # same key
    assert visit_firings(warehouse, visit + dt.timedelta(hours=2)) == []  # past the 1h look-back
    con = duckdb.connect(str(warehouse))
    con.execute("insert into main_marts.customer_events values "
                "('kim', 'segment_pages:v4', 'page_view', ?)", [visit + dt.timedelta(hours=3)])
    con.close()
    assert visit_firings(warehouse, visit + dt.timedelta(hours=3, minutes=45)) == [
        ("site_visit_no_purchase_30m:kim:segment_pages:v4",
         visit + dt.timedelta(hours=3, minutes=30))]  # a new visit, a new episode


@pytest.mark.parametrize(("entry", "expected"), [
    ({"dwell": "30 minutes"}, "trigger t: dwell: bad window '30 minutes'"),
    ({"lookback": "yesterday"}, "trigger t: lookback: bad window 'yesterday'"),
    ({"enter": {"event_var": "features.no_such_list"}}, "trigger t: enter.event_var: dbt var"),
    ({"enter": {"event": "page_view", "purchase": True}}, "trigger t: enter: give exactly one"),
    ({"exit": {}}, "trigger t: exit: give exactly one"),
    ({"once_per": "day"}, "trigger t: once_per: Input should be 'episode' or 'customer'"),
    ({"enter": {"event": "{{ env_var('X') }}"}}, "trigger t: enter.event: contains template"),
    ({"name": "Bad Name"}, "trigger Bad Name: name: String should match pattern"),
])
def test_a_bad_declaration_names_file_trigger_and_field(tmp_path: Path, entry: dict,
                                                        expected: str) -> None:
    declared = {"name": "t", "description": "A test.", "enter": {"event": "page_view"}, **entry}
    path = tmp_path / "mine.yml"
    path.write_text(yaml.safe_dump({"triggers": [declared]}))
    with pytest.raises(TriggerError, match=re.escape(f"{path}: {expected}")):
        load_triggers(tmp_path)


# --- fast path: events loaded since the last identity build -------------------------------------

def add_pending(path: Path) -> None:
    """The identity map of the last full run, and raw rows loaded after it."""
    con = duckdb.connect(str(path))
    con.execute("create table main_marts.customer_identities (customer_id varchar, "
                "identifier_type varchar, identifier_value varchar)")
    con.executemany("insert into main_marts.customer_identities values (?, ?, ?)", [
        ("hal", "user_id", "u-hal"), ("ivy", "anonymous_id", "a-ivy"),
        ("jon", "user_id", "u-jon"), ("jon", "shop_customer_id", "s-jon"),
        ("ann", "user_id", "u-ann"),
    ])
    con.execute("create schema raw")
    con.execute("create table raw.segment_tracks (id varchar, anonymous_id varchar, "
                "user_id varchar, event varchar, \"timestamp\" timestamptz)")
    two_hours_ago = NOW - dt.timedelta(hours=2)
    con.executemany("insert into raw.segment_tracks values (?, ?, ?, ?, ?)", [
        # hal: known user_id (untrimmed in the raw file), cart 2 hours ago -> fires now
        ("n1", None, " u-hal ", "Product Added", two_hours_ago),
        # ivy: known only by her anonymous id -> fires
        ("n2", "a-ivy", None, "Product Added", two_hours_ago),
        # a visitor the identity map does not know yet -> waits for the full run
        ("n3", "a-new", "u-new", "Product Added", two_hours_ago),
        # jon: cart, then an order arrives in the same batch through the shop -> no cart trigger
        ("n4", None, "u-jon", "Product Added", two_hours_ago),
        # ann's cart is already in customer_events (t:1) and in raw under its id: counted once
        ("1", None, "u-ann", "Product Added", two_hours_ago),
    ])
    con.execute("create table raw.shop_orders (order_id varchar, shop_customer_id varchar, "
                "email varchar, ordered_at timestamptz, status varchar)")
    con.execute("insert into raw.shop_orders values ('s1', 's-jon', null, ?, 'Completed')",
                [NOW - dt.timedelta(hours=1)])
    con.execute("update main_marts.customer_events set event_id = 'segment_tracks:1' "
                "where event_id = 't:1'")
    con.close()


def test_fast_path_fires_for_known_identifiers_before_identity_is_rebuilt(warehouse: Path) -> None:
    before = fired(warehouse)
    add_pending(warehouse)
    after = fired(warehouse)
    assert after - before == {("cart_abandoned_1h", "hal"), ("cart_abandoned_1h", "ivy"),
                              ("first_purchase_today", "jon")}
    assert not {row for row in after if row[1] in ("jon",) and row[0] == "cart_abandoned_1h"}
    con = duckdb.connect(str(warehouse))
    keys = [r[0] for r in con.execute(f"select trigger_event_id from {TABLE}").fetchall()]
    con.close()
    assert len(keys) == len(set(keys))
    assert "cart_abandoned_1h:hal:segment_tracks:n1" in keys   # the key the full run will give


def test_fast_path_adds_nothing_once_the_full_run_has_the_events(warehouse: Path) -> None:
    add_pending(warehouse)
    con = duckdb.connect(str(warehouse))
    # What the full run's customer_events would hold for the pending rows.
    con.execute("""insert into main_marts.customer_events
        select coalesce(i.customer_id, 'new'), 'segment_tracks:' || t.id, lower(t.event),
               cast(timezone('UTC', t."timestamp") as timestamp)
        from raw.segment_tracks as t
        left join main_marts.customer_identities as i
          on i.identifier_value in (trim(t.user_id), t.anonymous_id)
        where t.id <> '1'""")
    con.execute("""insert into main_marts.customer_events
        select 'jon', 'shop_orders:s1', 'order_completed', ?""", [NOW - dt.timedelta(hours=1)])
    con.close()
    rows = fired(warehouse)
    con = duckdb.connect(str(warehouse))
    count = con.execute(f"select count(*) from {TABLE}").fetchone()[0]
    con.close()
    assert count == len(rows)   # no firing twice from raw and the timeline
    assert ("cart_abandoned_1h", "new") in rows and ("first_purchase_today", "jon") in rows


# --- on PostgreSQL: the same SQL through the warehouse interface ---------------------------------

def firings(wh) -> set[tuple]:
    return set(wh.rows(f"select trigger_event_id, trigger_name, customer_id, triggered_at, "
                       f"source_event_at, evaluated_at from {TABLE}"))


def copy_into(wh, path: Path) -> None:
    """The test warehouse's tables, as they are, into another engine."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        for schema, name in con.execute("select table_schema, table_name from "
                                        "information_schema.tables").fetchall():
            wh.replace_table(f"{schema}.{name}",
                             con.sql(f"select * from {schema}.{name}").to_arrow_table())
    finally:
        con.close()


def duckdb_firings(path: Path) -> set[tuple]:
    """The firings at NOW on the DuckDB test warehouse (fast path included); the trigger table is
    dropped again so that copy_into carries only the inputs."""
    add_pending(path)  # the fast path too: raw tables with a quoted "timestamp" column
    con = duckdb.connect(str(path))
    try:
        refresh_trigger_events(con, NOW)
        found = set(con.execute(
            f"select trigger_event_id, trigger_name, customer_id, triggered_at, source_event_at, "
            f"evaluated_at from {TABLE}").fetchall())
        con.execute(f"drop table {TABLE}")
    finally:
        con.close()
    return found


def test_the_same_firings_on_postgres(warehouse: Path, postgres_server,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in postgres_server.fresh_database("triggers").items():
        monkeypatch.setenv(key, value)
    on_duckdb = duckdb_firings(warehouse)
    with WarehouseResource(target="postgres").open() as wh:
        copy_into(wh, warehouse)
        counts = refresh_trigger_events(wh, NOW)
        on_postgres = firings(wh)
    assert on_postgres == on_duckdb
    assert counts == {"cart_abandoned_1h": 3, "first_purchase_today": 3}  # ann hal ivy; bob eve jon


def test_the_same_firings_on_spark(warehouse: Path, request: pytest.FixtureRequest,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    server = request.getfixturevalue("spark_thrift_server")
    for key, value in server.env.items():
        monkeypatch.setenv(key, value)
    server.drop_schemas("main_marts", "raw", "triggers")
    on_duckdb = duckdb_firings(warehouse)
    with WarehouseResource(target="spark").open() as wh:
        copy_into(wh, warehouse)
        refresh_trigger_events(wh, NOW)
        on_spark = firings(wh)
    assert on_spark == on_duckdb
