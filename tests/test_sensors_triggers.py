"""Trigger audiences (orchestration/triggers.py): who fires, when, and that each firing is stable."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.triggers import TABLE, refresh_trigger_events, trigger_events
from orchestration.warehouse import WarehouseResource

NOW = dt.datetime(2026, 3, 10, 12, 0)

EVENTS = [
    # ann: cart 2 hours ago, no purchase since -> cart_abandoned_1h
    ("ann", "t:1", "product added", NOW - dt.timedelta(hours=2)),
    # bob: cart 2 hours ago, bought 30 minutes later -> no cart trigger; a first purchase today
    ("bob", "t:2", "product added", NOW - dt.timedelta(hours=2)),
    ("bob", "o:2", "order_completed", NOW - dt.timedelta(hours=1, minutes=30)),
    # cy: cart 20 minutes ago -> not yet
    ("cy", "t:3", "product added", NOW - dt.timedelta(minutes=20)),
    # dee: cart 10 days ago -> outside the look-back window
    ("dee", "t:4", "product added", NOW - dt.timedelta(days=10)),
    # eve: first ever purchase this morning -> first_purchase_today
    ("eve", "o:5", "store_purchase", NOW - dt.timedelta(hours=3)),
    # fay: bought before, bought again today -> not a first purchase
    ("fay", "o:6", "order completed", NOW - dt.timedelta(days=40)),
    ("fay", "o:7", "order completed", NOW - dt.timedelta(hours=1)),
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
