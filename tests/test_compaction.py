"""Warehouse compaction: deleted values leave the DuckDB file, live data and objects stay."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

import duckdb
import pytest

from orchestration.compaction import CompactionError, compact_warehouse
from orchestration.serving.versions import remove_versions_before


def make_warehouse(path: Path) -> str:
    """3,000 distinct emails in a table with a view and a macro; half deleted, checkpointed and
    vacuumed. Returns one deleted email (still in the file's free blocks)."""
    with duckdb.connect(str(path)) as con:
        con.execute("create schema raw")
        con.execute("create table raw.people as select 'person' || range || '.' || "
                    "md5(range::varchar) || '@erase.example' as email, range as i from range(3000)")
        con.execute("create view raw.kept as select email from raw.people where i >= 1500")
        con.execute("create macro raw.twice(x) as 2 * x")
        con.execute("checkpoint")
        erased = con.execute("select email from raw.people where i = 1234").fetchone()[0]
        con.execute("delete from raw.people where i < 1500")
        con.execute("force checkpoint")
        con.execute("vacuum")
    return erased


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_compaction_removes_deleted_values_and_keeps_live_data(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    erased = make_warehouse(path)
    os.chmod(path, 0o600)
    assert erased.encode() in path.read_bytes()  # what the audit found: deleted, yet on disk
    report = compact_warehouse(path)
    assert erased.encode() not in path.read_bytes()
    assert report.tables == 1 and report.bytes_after > 0
    assert path.stat().st_mode & 0o777 == 0o600
    with duckdb.connect(str(path)) as con:
        assert con.execute("select count(*), min(i) from raw.people").fetchone() == (1500, 1500)
        assert con.execute("select count(*) from raw.kept").fetchone()[0] == 1500
        assert con.execute("select raw.twice(21)").fetchone()[0] == 42
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse.duckdb"]  # no leftovers


def test_compaction_refuses_while_the_warehouse_is_open_and_changes_nothing(
        tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    make_warehouse(path)
    before = digest(path)
    holder = duckdb.connect(str(path))  # e.g. a forgotten connection in the same process
    try:
        with pytest.raises(CompactionError, match="open elsewhere"):
            compact_warehouse(path)
        assert holder.execute("select count(*) from raw.people").fetchone()[0] == 1500
    finally:
        holder.close()
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse.duckdb"]


def test_snapshot_versions_built_before_an_erasure_are_removed(tmp_path: Path) -> None:
    target = tmp_path / "serving.duckdb"

    def version(moment: dt.datetime) -> Path:
        path = tmp_path / f".{target.name}.{moment.strftime('%Y%m%dT%H%M%S%fZ')}.42"
        path.write_bytes(b"snapshot")
        return path

    erased_at = dt.datetime(2026, 10, 1, 12, 0)
    older = version(erased_at - dt.timedelta(hours=2))
    old = version(erased_at - dt.timedelta(hours=1))
    current = version(erased_at - dt.timedelta(minutes=1))
    newer = version(erased_at + dt.timedelta(minutes=5))
    target.symlink_to(current.name)
    removed = remove_versions_before(target, erased_at)
    assert sorted(removed) == sorted([older, old])
    assert not older.exists() and not old.exists()
    assert current.exists() and newer.exists()  # the current one is rebuilt, never removed


def test_a_swap_interrupted_before_the_rename_never_zeroes_the_live_file(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    make_warehouse(path)
    os.link(path, tmp_path / ".warehouse.duckdb.retired")  # killed right after the hard link
    compact_warehouse(path)
    with duckdb.connect(str(path)) as con:
        assert con.execute("select count(*) from raw.people").fetchone()[0] == 1500
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse.duckdb"]


def test_a_swap_interrupted_before_zeroing_is_zeroed_next_time(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    erased = make_warehouse(path)
    retired = tmp_path / ".warehouse.duckdb.retired"
    retired.write_bytes(path.read_bytes())  # killed after the rename: the old file, by name
    compact_warehouse(path)
    assert not retired.exists()
    assert erased.encode() not in path.read_bytes()
