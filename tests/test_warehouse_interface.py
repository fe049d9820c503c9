"""The warehouse interface behaves the same on every engine (real DuckDB file, real PostgreSQL,
real Spark Thrift server)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from orchestration.warehouse import Warehouse, WarehouseError, open_warehouse


@pytest.fixture(params=["duckdb", "postgres", "spark"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[Warehouse]:
    if request.param == "postgres":
        server = request.getfixturevalue("postgres_server")
        for key, value in server.fresh_database("iface").items():
            monkeypatch.setenv(key, value)
    if request.param == "spark":
        spark = request.getfixturevalue("spark_thrift_server")
        for key, value in spark.env.items():
            monkeypatch.setenv(key, value)
        spark.drop_schemas("cdp_test")
    wh = open_warehouse(request.param, tmp_path / "warehouse.duckdb")
    try:
        yield wh
    finally:
        wh.close()


def people() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": ["a", "b", "c"],
        "score": [1.5, None, 3.0],
        "orders": [1, 2, 3],
        "seen_at": pd.to_datetime(["2026-01-01 10:00", "2026-02-01 00:00", "2026-03-01 00:00"]),
        "note": ["", None, "x,\"y\""],
    })


def test_replace_table_round_trips_values_nulls_and_empty_strings(warehouse: Warehouse) -> None:
    assert warehouse.replace_table("cdp_test.people", people()) == 3
    assert warehouse.exists("cdp_test.people")
    assert warehouse.columns("cdp_test.people") == list(people().columns)
    rows = warehouse.rows("select customer_id, score, orders, seen_at, note "
                          "from cdp_test.people order by customer_id")
    assert [r[0] for r in rows] == ["a", "b", "c"]
    assert rows[0][1] == 1.5 and (rows[1][1] is None or pd.isna(rows[1][1]))
    assert [int(r[2]) for r in rows] == [1, 2, 3]
    assert pd.Timestamp(rows[0][3]) == pd.Timestamp("2026-01-01 10:00")
    assert rows[0][4] == "" and rows[1][4] is None and rows[2][4] == 'x,"y"'


def test_replace_is_whole_and_a_failed_replace_keeps_the_old_rows(warehouse: Warehouse) -> None:
    warehouse.replace_table("cdp_test.people", people())
    warehouse.replace_table("cdp_test.people", people().iloc[:1])
    assert warehouse.scalar("select count(*) from cdp_test.people") == 1
    with pytest.raises(Exception):
        warehouse.replace_table_as("cdp_test.people", "select * from cdp_test.no_such_table")
    assert warehouse.scalar("select count(*) from cdp_test.people") == 1


def test_replace_table_as_may_read_the_table_it_replaces(warehouse: Warehouse) -> None:
    warehouse.replace_table("cdp_test.people", people())
    count = warehouse.replace_table_as(
        "cdp_test.people", "select * from cdp_test.people where orders >= %(least)s", {"least": 2})
    assert count == 2
    assert sorted(r[0] for r in warehouse.rows("select customer_id from cdp_test.people")) == ["b", "c"]


def test_append_creates_then_adds_by_name(warehouse: Warehouse) -> None:
    frame = people()[["customer_id", "orders"]]
    warehouse.append("cdp_test.log", frame)
    warehouse.append("cdp_test.log", frame[["orders", "customer_id"]].iloc[:1])
    assert warehouse.scalar("select count(*) from cdp_test.log where customer_id = 'a'") == 2


def test_delete_keys_deletes_exactly_the_matching_rows(warehouse: Warehouse) -> None:
    warehouse.replace_table("cdp_test.people", people())
    keys = pd.DataFrame({"customer_id": ["a", "c", "zz"], "orders": [1, 4, 1]})
    assert warehouse.delete_keys("cdp_test.people", keys) == 1
    assert sorted(r[0] for r in warehouse.rows("select customer_id from cdp_test.people")) == ["b", "c"]


def test_delete_where_deletes_the_rows_the_condition_holds_for_and_keeps_nulls(
        warehouse: Warehouse) -> None:
    """A NULL condition keeps the row, as SQL's DELETE does (row b: its note is NULL); the count
    is the rows gone."""
    warehouse.replace_table("cdp_test.people", people())
    gone = warehouse.delete_where("cdp_test.people",
                                  "customer_id in (select value from (values ('a'), ('zz')) "
                                  "as vs(value)) or note = %(note)s", {"note": "nobody"})
    assert gone == 1
    assert sorted(r[0] for r in warehouse.rows("select customer_id from cdp_test.people")) == [
        "b", "c"]
    assert warehouse.delete_where("cdp_test.people", "cast(null as boolean)") == 0
    assert warehouse.scalar("select count(*) from cdp_test.people") == 2


def test_a_sha256_in_sql_is_pythons_hex_digest(warehouse: Warehouse) -> None:
    digest = warehouse.scalar(f"select {warehouse.sha256_hex_sql('%(salt)s || %(key)s')}",
                              {"salt": "pepper", "key": "ana@x.io"})
    assert digest == hashlib.sha256(b"pepperana@x.io").hexdigest()


def test_transaction_rolls_back_every_statement(warehouse: Warehouse) -> None:
    if warehouse.engine == "spark":
        pytest.skip("Spark has no transactions: test_spark_transaction_is_a_documented_no_op")
    warehouse.replace_table("cdp_test.people", people())
    with pytest.raises(ValueError), warehouse.transaction():
        warehouse.execute("delete from cdp_test.people")
        raise ValueError("stop")
    assert warehouse.scalar("select count(*) from cdp_test.people") == 3


def test_a_nested_block_joins_the_open_transaction(warehouse: Warehouse) -> None:
    """A write inside an open transaction (replace_table opens its own) commits with the outer
    block or rolls back with it."""
    if warehouse.engine == "spark":
        pytest.skip("Spark has no transactions: test_spark_transaction_is_a_documented_no_op")
    warehouse.replace_table("cdp_test.people", people())
    with pytest.raises(ValueError), warehouse.transaction():
        warehouse.replace_table("cdp_test.people", people().iloc[:1])
        with warehouse.transaction():
            warehouse.append("cdp_test.log", people()[["customer_id"]])
        raise ValueError("stop")
    assert warehouse.scalar("select count(*) from cdp_test.people") == 3
    assert not warehouse.exists("cdp_test.log")


def test_parameters_and_batches(warehouse: Warehouse) -> None:
    warehouse.replace_table("cdp_test.people", people())
    frame = warehouse.query("select customer_id from cdp_test.people where customer_id like 'a%%' "
                            "or orders = %(n)s order by customer_id", {"n": 3})
    assert list(frame["customer_id"]) == ["a", "c"]
    sizes = [len(b) for b in warehouse.batches("select * from cdp_test.people", rows=2)]
    assert sum(sizes) == 3 and max(sizes) <= 2
    assert warehouse.scalar("select max(seen_at) from cdp_test.people") is not None
    assert not warehouse.exists("cdp_test.nothing") and warehouse.columns("cdp_test.nothing") == []


def test_relation_names_are_checked_before_any_sql(warehouse: Warehouse) -> None:
    with pytest.raises(WarehouseError, match="schema.table"):
        warehouse.replace_table("people; drop table x", people())
    assert dt.date.today()  # the session stays usable
    assert warehouse.scalar("select 1") == 1


def test_sql_type_names_cast_on_the_engine(warehouse: Warehouse) -> None:
    kinds = ["string", "bigint", "double", "boolean", "timestamp", "date"]
    casts = ", ".join(f"cast(null as {warehouse.sql_type(k)}) as c_{k}" for k in kinds)
    frame = warehouse.query(f"select {casts}")
    assert list(frame.columns) == [f"c_{k}" for k in kinds]
    with pytest.raises(WarehouseError, match="unknown column kind"):
        warehouse.sql_type("blob")


def test_spark_transaction_is_a_documented_no_op(warehouse: Warehouse) -> None:
    """On Spark each table write is atomic on its own and stays when the block fails."""
    if warehouse.engine != "spark":
        pytest.skip("engines with transactions: test_transaction_rolls_back_every_statement")
    with pytest.raises(ValueError), warehouse.transaction():
        warehouse.replace_table("cdp_test.people", people())
        raise ValueError("stop")
    assert warehouse.scalar("select count(*) from cdp_test.people") == 3


def test_spark_swap_keeps_views_and_types(warehouse: Warehouse) -> None:
    """Same columns: the table is overwritten in place, so a view on it (as dbt's staging views
    are) stays valid; new columns: the table is swapped. Types are Spark's for the Arrow types."""
    if warehouse.engine != "spark":
        pytest.skip("Spark's swap")
    warehouse.replace_table("cdp_test.people", people())
    warehouse.execute("create view cdp_test.people_view as select * from cdp_test.people")
    warehouse.replace_table("cdp_test.people", people().iloc[:2])
    assert warehouse.scalar("select count(*) from cdp_test.people_view") == 2
    types = {r[0]: r[1] for r in warehouse.rows("describe table cdp_test.people")[:5]}
    assert types == {"customer_id": "string", "score": "double", "orders": "bigint",
                     "seen_at": "timestamp", "note": "string"}
    warehouse.replace_table("cdp_test.people", people().assign(extra=1))
    assert warehouse.columns("cdp_test.people")[-1] == "extra"
    assert not [n for n in warehouse.rows("show tables in cdp_test") if "_cdp_new_" in n[1]]


def test_spark_parameters_numpy_decimal_and_aware_timestamps(warehouse: Warehouse) -> None:
    """PyHive escapes only plain Python values and drops a datetime's offset: the engine passes
    numpy scalars, decimals and aware datetimes (as UTC) correctly."""
    if warehouse.engine != "spark":
        pytest.skip("PyHive's parameter escaping")
    warehouse.replace_table("cdp_test.people", people())
    at = dt.datetime(2026, 1, 1, 11, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))  # 09:30 UTC
    assert warehouse.scalar("select count(*) from cdp_test.people where seen_at < %(at)s "
                            "and orders >= %(n)s", {"at": at, "n": np.int64(1)}) == 0
    assert warehouse.scalar("select cast(%(d)s as decimal(4,2))", {"d": Decimal("1.10")}) \
        == Decimal("1.10")
