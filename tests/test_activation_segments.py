"""Syncs from a segment by name, experiment holdouts in a sync, and the sending-nothing preview."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from orchestration import experiments
from orchestration.activation import state
from orchestration.activation.__main__ import main
from orchestration.activation.config import ConfigError, parse_config
from orchestration.activation.engine import run_sync
from orchestration.catalog import catalog


def sync_file(folder: Path, segment: str = "high_value", experiment: bool = False) -> dict:
    sync = {"name": "winback", "source": {"segment": segment}, "primary_key": "customer_id",
            "mode": "mirror", "fields": {"customer_id": "customer_id", "email": "primary_email"},
            "destination": {"type": "files", "url": str(folder / "out"), "format": "jsonl"}}
    if experiment:
        sync["experiment"] = {"id": "winback_q4", "holdout_share": 0.3,
                              "variants": {"a": 0.5, "b": 0.5}, "variant_field": "variant"}
    return {"syncs": [sync]}


def plant(con: duckdb.DuckDBPyConnection, customers: int, members: dict[str, list[int]]) -> None:
    """marts customers (customer_id, primary_email) and segment_memberships, by hand."""
    people, memberships = catalog().relation("customers"), catalog().relation("segment_memberships")
    con.execute(f"create schema if not exists {people.split('.')[0]}")
    con.execute(f"create or replace table {people} as select 'c' || i as customer_id,"
                f" 'p' || i || '@example.com' as primary_email from range({customers}) t(i)")
    con.execute(f"create or replace table {memberships} (segment_name varchar,"
                " customer_id varchar, entered_at date)")
    for segment, ids in members.items():
        con.executemany(f"insert into {memberships} values (?, ?, date '2026-01-01')",
                        [(segment, f"c{i}") for i in ids])


def sent(folder: Path) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    for path in sorted((folder / "out" / "winback").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            rows[record["_key"]] = record
    return rows


def test_a_sync_from_a_segment_sends_its_current_members(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    plant(con, 20, {"high_value": [1, 2, 3], "lapsed": [4, 5]})
    config = parse_config(sync_file(tmp_path), "syncs.yml")
    assert config.syncs[0].source_asset_key == "segment_memberships"
    assert run_sync(con, config, "winback").ok
    assert {k: r["email"] for k, r in sent(tmp_path).items()} == {
        f"c{i}": f"p{i}@example.com" for i in (1, 2, 3)}


def test_an_unknown_segment_names_the_file_and_the_sync(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(sync_file(tmp_path, segment="no_such_segment"), "activation/syncs.yml")
    assert ("activation/syncs.yml: syncs[0] (winback).source.segment: unknown segment "
            "'no_such_segment'") in str(error.value)
    assert "high_value" in str(error.value)  # the declared names, read from dbt


def test_the_holdout_is_never_sent_and_the_variant_is_a_field(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    plant(con, 400, {"high_value": list(range(300))})
    config = parse_config(sync_file(tmp_path, experiment=True), "syncs.yml")
    assert run_sync(con, config, "winback").ok
    assigned = dict(con.execute(f"select customer_id, variant from {experiments.ASSIGNMENTS}"
                                " where experiment_id = 'winback_q4'").fetchall())
    assert len(assigned) == 300 and 60 < list(assigned.values()).count("holdout") < 120
    rows = sent(tmp_path)
    assert set(rows) == {c for c, v in assigned.items() if v != "holdout"}
    assert all(rows[c]["variant"] == assigned[c] for c in rows)
    # a second run assigns no one again and sends nothing new
    result = run_sync(con, config, "winback")
    assert result.ok and result.counts.sent == 0
    assert con.execute(f"select count(*) from {experiments.ASSIGNMENTS}").fetchone() == (300,)


def test_preview_lists_the_next_changes_and_sends_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    warehouse = tmp_path / "wh.duckdb"
    con = duckdb.connect(str(warehouse))
    plant(con, 20, {"high_value": [1, 2, 3, 4]})
    (tmp_path / "syncs.yml").write_text(json.dumps(sync_file(tmp_path)))
    config = parse_config(sync_file(tmp_path), "syncs.yml")
    assert run_sync(con, config, "winback").ok
    # next run: c5 enters, c1 leaves, c2 changes email
    memberships = catalog().relation("segment_memberships")
    con.execute(f"delete from {memberships} where customer_id = 'c1'")
    con.execute(f"insert into {memberships} values ('high_value', 'c5', date '2026-01-02')")
    con.execute(f"update {catalog().relation('customers')} set primary_email = 'new@example.com'"
                " where customer_id = 'c2'")
    before = con.execute(f"select * from {state.STATE} order by row_key").fetchall()
    files = sorted((tmp_path / "out").rglob("*"))
    con.close()
    capsys.readouterr()
    assert main(["preview", "winback", "--config", str(tmp_path / "syncs.yml"),
                 "--warehouse", str(warehouse)]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{"):])
    assert report["counts"] == {"adds": 1, "updates": 1, "removes": 1}
    assert report["preview"]["upsert"] == [
        {"key": "c2", "change": "changed",
         "fields": {"customer_id": "c2", "email": "new@example.com"}},
        {"key": "c5", "change": "added",
         "fields": {"customer_id": "c5", "email": "p5@example.com"}}]
    assert [row["key"] for row in report["preview"]["delete"]] == ["c1"]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute(f"select * from {state.STATE} order by row_key").fetchall() == before
    assert sorted((tmp_path / "out").rglob("*")) == files
