"""BI publication: PII hashed, swapped atomically, and an open reader never blocks the next run."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import duckdb
import pytest

from security_support.file_modes import files_and_exposed

from orchestration.publication import PublishedTable, publish


def test_publish_hashes_pii_and_replaces_the_file_atomically(tmp_path: Path) -> None:
    warehouse = duckdb.connect(str(tmp_path / "wh.duckdb"))
    warehouse.execute("create schema marts")
    warehouse.execute("create table marts.people as select 'c1' as customer_id, 'a@b.com' as email")
    tables = [PublishedTable("people", "marts", ("customer_id", "email"), frozenset({"email"}))]
    target = tmp_path / "bi.duckdb"

    assert publish(warehouse, tables, target, salt="s").counts == {"people": 1}
    reader = duckdb.connect(str(target), read_only=True)
    row = reader.execute("select customer_id, email from people").fetchone()
    assert row[0] == "c1"
    assert row[1] != "a@b.com" and len(row[1]) == 64

    # A second publication while the first file is still open for reading.
    warehouse.execute("insert into marts.people values ('c2', 'x@y.com')")
    assert publish(warehouse, tables, target, salt="s").counts == {"people": 2}
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


# --- record ids that embed identifiers, file permissions, salts (docs/security.md) ---------

EVENTS_SQL = """
create schema main_marts;
create table main_marts.customer_events as select * from (values
    ('crm_contacts:003000000000777', 'cus_1', 'crm_contacts', '003000000000777'),
    ('loyalty_members:LY000000555', 'cus_1', 'loyalty_members', 'LY000000555'),
    ('shop_orders:ORD-000000042', 'cus_1', 'shop_orders', 'ORD-000000042')
) as t(event_id, customer_id, source, source_record_id);
create table main_marts.customer_source_records as
select event_id as customer_source_record_id, source, source_record_id, customer_id,
       'email' as matched_identifier_type
from main_marts.customer_events;
create table main_marts.identity_edges as
select 'x|y' as edge_id, source, source_record_id from main_marts.customer_events;
"""
PERSONAL_RECORD_IDS = ("003000000000777", "LY000000555")


def _manifest_tables() -> list:
    import json

    from orchestration.dbt_assets import PROJECT, ensure_manifest
    from orchestration.publication import published_tables

    return published_tables(json.loads(ensure_manifest(PROJECT).read_text()))


def test_record_ids_that_are_identifiers_are_hashed_like_the_identifier(tmp_path: Path) -> None:
    warehouse = duckdb.connect(str(tmp_path / "wh.duckdb"))
    warehouse.execute(EVENTS_SQL)
    target = tmp_path / "bi.duckdb"
    # Which columns hold record ids comes from the dbt YAML (meta embeds_pii), which sources'
    # record ids are identifiers from dbt var identity.sources: nothing named here.
    publish(warehouse, _manifest_tables(), target, salt="s")
    warehouse.close()

    data = target.read_bytes()
    leaked = [value for value in PERSONAL_RECORD_IDS if value.encode() in data]
    assert leaked == []
    reader = duckdb.connect(str(target), read_only=True)
    events = dict(reader.execute(
        "select source, event_id from customer_events").fetchall())
    assert events["shop_orders"] == "shop_orders:ORD-000000042"  # an order id is no identifier
    assert len(events["crm_contacts"]) == 64 and len(events["loyalty_members"]) == 64
    # One salt, one rule: the hashed ids still join across tables.
    joined = reader.execute(
        "select count(*) from customer_events as e join customer_source_records as r "
        "on e.event_id = r.customer_source_record_id").fetchone()[0]
    assert joined == 3
    edges = dict(reader.execute("select source, source_record_id from identity_edges").fetchall())
    assert edges["shop_orders"] == "ORD-000000042"
    assert edges["loyalty_members"] not in PERSONAL_RECORD_IDS
    reader.close()


def test_a_source_missing_from_identity_sources_is_hashed(tmp_path: Path) -> None:
    warehouse = duckdb.connect(str(tmp_path / "wh.duckdb"))
    warehouse.execute(EVENTS_SQL)
    target = tmp_path / "bi.duckdb"
    publish(warehouse, _manifest_tables(), target, salt="s", clear_sources=set())
    reader = duckdb.connect(str(target), read_only=True)
    ids = [r[0] for r in reader.execute("select event_id from customer_events").fetchall()]
    assert all(len(i) == 64 and ":" not in i for i in ids)


def test_publication_is_never_readable_by_others_even_while_built(tmp_path: Path) -> None:
    """A function in the published query looks at the folder while the file is being written."""
    target = tmp_path / "publication" / "bi.duckdb"
    seen: list[tuple[list[str], list[str]]] = []

    def spy() -> int:
        seen.append(files_and_exposed(target.parent))
        return 1

    warehouse = duckdb.connect(str(tmp_path / "wh.duckdb"))
    warehouse.create_function("spy", spy, [], "INTEGER", side_effects=True)
    warehouse.execute("create schema marts")
    warehouse.execute("create table marts.people as select 'c1' as customer_id, 'a@b.com' as email")
    warehouse.execute("create view marts.zz_spy as select spy() as v")
    tables = [PublishedTable("people", "marts", ("customer_id", "email"), frozenset({"email"})),
              PublishedTable("zz_spy", "marts", ("v",), frozenset())]
    old_umask = os.umask(0o022)  # the usual default: new files 0644
    try:
        publish(warehouse, tables, target, salt="s")
    finally:
        os.umask(old_umask)
    files, exposed = seen[0]
    assert files, "the spy ran before the file existed: it would prove nothing"
    assert exposed == [], exposed  # nothing readable by others mid-build
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["bi.duckdb"]


def test_publication_mode_may_add_a_group_never_others() -> None:
    from orchestration.settings import publication_file_mode

    assert publication_file_mode({}) == 0o600
    assert publication_file_mode({"CDP_PUBLICATION_MODE": "0640"}) == 0o640
    for bad in ("0644", "rw", "0040"):
        with pytest.raises(ValueError, match="CDP_PUBLICATION_MODE"):
            publication_file_mode({"CDP_PUBLICATION_MODE": bad})


def test_default_salts_warn_only_outside_sample_data(tmp_path: Path, sample_landing: Path) -> None:
    from orchestration.settings import default_salt_warning

    real = tmp_path / "landing"
    real.mkdir()
    salts = {"CDP_PII_SALT": "p" * 32, "CDP_PRIVACY_SALT": "q" * 32}
    message = default_salt_warning(real, {})
    assert message and "CDP_PII_SALT and CDP_PRIVACY_SALT not set" in message
    assert "CDP_PRIVACY_SALT" in default_salt_warning(real, {"CDP_PII_SALT": "p" * 32})
    assert default_salt_warning(real, salts) is None
    assert default_salt_warning(sample_landing, {}) is None  # the generator's marker


def test_publication_run_with_default_salts_on_real_data_warns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dagster as dg

    from orchestration.publication import bi_publication
    from orchestration.warehouse import WarehouseResource

    landing = tmp_path / "landing"
    landing.mkdir()
    for name, value in {"CDP_LANDING_DIR": str(landing),
                        "CDP_PUBLICATION": str(tmp_path / "bi.duckdb")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CDP_PII_SALT", raising=False)
    monkeypatch.delenv("CDP_PRIVACY_SALT", raising=False)
    warehouse = tmp_path / "wh.duckdb"
    duckdb.connect(str(warehouse)).execute(EVENTS_SQL).close()
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([bi_publication], instance=instance,
                            resources={"warehouse": WarehouseResource(path=str(warehouse))})
    assert result.success
    metadata = result.asset_materializations_for_node("bi_publication")[0].metadata
    assert metadata["default_salt_on_real_data"].value is True
    warnings = [r.user_message for r in instance.all_logs(result.run_id)
                if r.level == logging.WARNING]
    assert any("SECURITY WARNING" in m and "CDP_PII_SALT" in m for m in warnings), warnings


def test_a_malformed_embeds_pii_names_the_model_and_column() -> None:
    from orchestration.publication import published_tables

    node = {"resource_type": "model", "path": "marts/x/people.sql", "name": "people",
            "alias": "people", "schema": "main_marts",
            "patch_path": "open_cdp://models/marts/x/_x__models.yml",
            "columns": {"record_id": {"config": {"meta": {"embeds_pii": True}}}}}
    with pytest.raises(ValueError, match=r"_x__models.yml: model people, column record_id: "
                                         r"meta embeds_pii must be \{source_column"):
        published_tables({"nodes": {"model.open_cdp.people": node}})


def test_a_killed_builds_folder_is_removed_by_the_next_build(tmp_path: Path) -> None:
    warehouse = duckdb.connect(str(tmp_path / "wh.duckdb"))
    warehouse.execute("create schema marts")
    warehouse.execute("create table marts.people as select 'c1' as customer_id")
    target = tmp_path / "publication" / "bi.duckdb"
    target.parent.mkdir()
    killed = target.parent / ".build-bi.duckdb-killed"    # what kill -9 mid-build leaves
    killed.mkdir(mode=0o700)
    (killed / "bi.duckdb").write_bytes(b"half-built personal data")
    os.utime(killed, (0, 0))
    running = target.parent / ".build-bi.duckdb-running"  # a build still going on: kept
    running.mkdir(mode=0o700)

    publish(warehouse, [PublishedTable("people", "marts", ("customer_id",), frozenset())], target)

    assert not killed.exists() and running.exists()


@pytest.mark.parametrize("target", ["postgres", "spark"])
def test_publication_is_skipped_with_its_reason_where_bi_reads_the_target(
        target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No copy on postgres/spark: the asset says why, writes no publication file and opens no
    DuckDB warehouse file."""
    import dagster as dg

    from orchestration.publication import bi_publication
    from orchestration.warehouse import WarehouseResource

    publication = tmp_path / "bi" / "cdp_bi.duckdb"
    absent = tmp_path / "no_warehouse" / "warehouse.duckdb"
    monkeypatch.setenv("CDP_PUBLICATION", str(publication))
    monkeypatch.setenv("CDP_WAREHOUSE", str(absent))
    monkeypatch.setenv("CDP_DBT_TARGET", target)
    result = dg.materialize([bi_publication], resources={"warehouse": WarehouseResource()})
    assert result.success
    metadata = result.asset_materializations_for_node("bi_publication")[0].metadata
    assert metadata["skipped"].value.startswith(f"target {target}: BI tools read")
    assert not publication.exists() and not absent.exists() and not absent.parent.exists()


# --- only what changed is derived again (issue 19) -----------------------------------------

def _rows(path: Path) -> dict[str, list[tuple]]:
    reader = duckdb.connect(str(path), read_only=True)
    try:
        names = [r[0] for r in reader.execute(
            "select table_name from information_schema.tables "
            "where table_name <> '_publication' order by 1").fetchall()]
        return {n: sorted(reader.execute(f'select * from "{n}"').fetchall(), key=repr)
                for n in names}
    finally:
        reader.close()


def test_only_tables_whose_source_changed_are_derived_again(tmp_path: Path) -> None:
    """A spy in the unchanged source counts its reads: the fingerprint reads each row once, a
    second derivation (hashing again) would read it twice."""
    reads = []

    def spy() -> int:
        reads.append(1)
        return 1

    warehouse = duckdb.connect(str(tmp_path / "wh.duckdb"))
    warehouse.create_function("spy", spy, [], "INTEGER", side_effects=True)
    warehouse.execute("create schema marts")
    warehouse.execute("create table marts.people_base as select 'c' || i as customer_id, "
                      "'p' || i || '@example.com' as email from range(3) as r(i)")
    warehouse.execute("create view marts.people as select *, spy() as seen from marts.people_base")
    warehouse.execute("create table marts.orders as select 'c1' as customer_id, 10 as amount")
    tables = [PublishedTable("orders", "marts", ("customer_id", "amount"), frozenset()),
              PublishedTable("people", "marts", ("customer_id", "email"), frozenset({"email"}))]
    target = tmp_path / "bi.duckdb"

    first = publish(warehouse, tables, target, salt="s")
    assert first.reused == () and first.swapped and len(reads) == 6  # fingerprint + derive

    warehouse.execute("insert into marts.orders values ('c2', 5)")
    reads.clear()
    second = publish(warehouse, tables, target, salt="s")
    assert second.reused == ("people",) and second.swapped
    assert second.counts == {"orders": 2, "people": 3}
    assert len(reads) == 3  # people only fingerprinted: copied from the previous file
    # The publication equals one derived from scratch.
    assert _rows(target) == _rows(_fresh(warehouse, tables, tmp_path / "fresh1.duckdb"))

    # Nothing changed: the file in place is kept, only its mode follows the setting.
    before = (target.stat().st_ino, target.read_bytes())
    third = publish(warehouse, tables, target, salt="s", mode=0o640)
    assert not third.swapped and third.reused == ("orders", "people")
    assert (target.stat().st_ino, target.read_bytes()) == before
    assert stat.S_IMODE(target.stat().st_mode) == 0o640

    # A new salt changes every hashed value: people is derived again though its rows are not.
    fourth = publish(warehouse, tables, target, salt="t")
    assert fourth.swapped and fourth.reused == ("orders",)
    assert _rows(target) == _rows(_fresh(warehouse, tables, tmp_path / "fresh2.duckdb", "t"))


def _fresh(warehouse: duckdb.DuckDBPyConnection, tables: list, path: Path,
           salt: str | None = "s") -> Path:
    """A publication made from scratch at `path` (salt None: the configured one)."""
    publish(warehouse, tables, path, salt=salt)
    return path


def test_an_erased_row_leaves_the_publication_when_its_table_is_unchanged_elsewhere(
        tmp_path: Path) -> None:
    """The erased person's table is derived again; the new file is written from scratch, so no
    freed page of the previous one carries their row into it."""
    warehouse = duckdb.connect(str(tmp_path / "wh.duckdb"))
    warehouse.execute("create schema marts")
    warehouse.execute("create table marts.people as select * from (values "
                      "('cus_keep', 'Leeds'), ('cus_erasemeplease', 'Yorkshiretownvale')) "
                      "as t(customer_id, city)")
    warehouse.execute("create table marts.orders as select 'cus_keep' as customer_id, 1 as n")
    tables = [PublishedTable("orders", "marts", ("customer_id", "n"), frozenset()),
              PublishedTable("people", "marts", ("customer_id", "city"), frozenset())]
    target = tmp_path / "bi.duckdb"
    publish(warehouse, tables, target, salt="s")
    assert b"cus_erasemeplease" in target.read_bytes()  # the search can see the person

    warehouse.execute("delete from marts.people where customer_id = 'cus_erasemeplease'")
    result = publish(warehouse, tables, target, salt="s")

    assert result.reused == ("orders",) and result.counts["people"] == 1
    data = target.read_bytes()
    assert b"cus_erasemeplease" not in data and b"Yorkshiretownvale" not in data


def test_a_real_runs_publication_is_kept_when_nothing_changed_and_follows_a_change(
        scratch_run, sample_pipeline_run: dict[str, str], tmp_path: Path) -> None:
    """The publication of a whole run, against a copy of that run's warehouse: after a dbt
    rebuild of `customers` from the same inputs nothing is derived again; after a row of it
    changes, only `customers` is, and the file equals a publication made from scratch."""
    import shutil

    from orchestration.catalog import catalog
    from orchestration.publication import published_tables

    target = tmp_path / "bi" / "cdp_bi.duckdb"
    target.parent.mkdir()
    shutil.copyfile(sample_pipeline_run["CDP_PUBLICATION"], target)
    scratch_run.build("customers")
    tables = published_tables(dict(catalog().manifest))
    warehouse = duckdb.connect(str(scratch_run.warehouse))
    try:
        kept = publish(warehouse, tables, target)
        assert not kept.swapped, "a rebuild from the same inputs changed a fingerprint"
        customers = catalog().relation("customers")
        warehouse.execute(f"update {customers} set city = 'Changed City' where customer_id = "
                          f"(select min(customer_id) from {customers})")
        changed = publish(warehouse, tables, target)
        assert changed.swapped and set(changed.counts) - set(changed.reused) == {"customers"}
        assert _rows(target) == _rows(_fresh(warehouse, tables, tmp_path / "f.duckdb", None))
    finally:
        warehouse.close()
