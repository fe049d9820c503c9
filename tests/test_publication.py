"""BI publication: PII hashed, swapped atomically, and an open reader never blocks the next run."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from orchestration.publication import PublishedTable, publish


def test_publish_hashes_pii_and_replaces_the_file_atomically(tmp_path: Path) -> None:
    warehouse = duckdb.connect(str(tmp_path / "wh.duckdb"))
    warehouse.execute("create schema marts")
    warehouse.execute("create table marts.people as select 'c1' as customer_id, 'a@b.com' as email")
    tables = [PublishedTable("people", "marts", ("customer_id", "email"), frozenset({"email"}))]
    target = tmp_path / "bi.duckdb"

    assert publish(warehouse, tables, target, salt="s") == {"people": 1}
    reader = duckdb.connect(str(target), read_only=True)
    row = reader.execute("select customer_id, email from people").fetchone()
    assert row[0] == "c1"
    assert row[1] != "a@b.com" and len(row[1]) == 64

    # A second publication while the first file is still open for reading.
    warehouse.execute("insert into marts.people values ('c2', 'x@y.com')")
    assert publish(warehouse, tables, target, salt="s") == {"people": 2}
    assert reader.execute("select count(*) from people").fetchone()[0] == 1  # old snapshot
    reader.close()
    fresh = duckdb.connect(str(target), read_only=True)
    assert fresh.execute("select count(*) from people").fetchone()[0] == 2
    assert not list(tmp_path.glob(".bi.duckdb.*.tmp"))


def test_failed_publication_keeps_the_previous_file(tmp_path: Path) -> None:
    warehouse = duckdb.connect(str(tmp_path / "wh.duckdb"))
    warehouse.execute("create schema marts")
    warehouse.execute("create table marts.people as select 'c1' as customer_id")
    good = [PublishedTable("people", "marts", ("customer_id",), frozenset())]
    target = tmp_path / "bi.duckdb"
    publish(warehouse, good, target)
    before = target.read_bytes()

    # A mart whose query fails at run time (a bad cast) aborts the publication part-way.
    warehouse.execute("create view marts.zz_broken as select cast('x' as integer) as v")
    broken = good + [PublishedTable("zz_broken", "marts", ("v",), frozenset())]
    with pytest.raises(duckdb.Error):
        publish(warehouse, broken, target)
    assert target.read_bytes() == before
    assert not list(tmp_path.glob(".bi.duckdb.*.tmp"))
