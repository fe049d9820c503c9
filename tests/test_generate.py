"""The sample data generator: determinism, contract columns, ground truth and promised dirt."""

from __future__ import annotations

import csv
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from orchestration.ingestion.contract import SOURCES, SOURCES_BY_NAME, LandingSource
from tools.sample_data import generator as gen
from tools.sample_data import shapes, values

CUSTOMERS = 400
SEED = 11
PERSON_SOURCES = [s for s in SOURCES if s.name != "shop_order_lines"]


def read_csv(path: Path) -> pa.Table:
    """All columns as text; an unquoted empty field is null, a quoted one is ''."""
    with path.open(newline="") as f:
        header = next(csv.reader(f))
    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
        column_types={c: pa.string() for c in header},
        strings_can_be_null=True, quoted_strings_can_be_null=False,
    ))


def landing_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def typed_columns() -> list[tuple[LandingSource, str, str]]:
    """(source, column, DuckDB type) of every typed landing column."""
    casts = {"timestamp": "timestamptz", "number": "double", "integer": "bigint"}
    return [(s, c, casts[s.column_type(c)]) for s in SOURCES for c in s.known_columns
            if s.column_type(c) != "text"]


def load_folder(folder: Path) -> duckdb.DuckDBPyConnection:
    db = duckdb.connect()
    for source in SOURCES:
        db.register(source.name, read_csv(folder / f"{source.name}.csv"))
    return db


def count(db: duckdb.DuckDBPyConnection, sql: str) -> int:
    return db.execute(sql).fetchall()[0][0]


def unparseable(db: duckdb.DuckDBPyConnection, source: LandingSource, column: str,
                cast: str) -> int:
    return count(db, f'select count(*) from {source.name} where "{column}" is not null '
                     f'and try_cast("{column}" as {cast}) is null')


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("sample")
    return out, gen.generate(CUSTOMERS, SEED, out)


@pytest.fixture(scope="module")
def con(sample: tuple[Path, dict[str, int]]) -> duckdb.DuckDBPyConnection:
    """The sample's files as DuckDB views (text columns), plus truth, people and hubs."""
    folder = sample[0]
    db = load_folder(folder)
    for name in ("truth", "people", "hubs"):
        db.execute(f"create view {name} as select * from "
                   f"read_parquet('{folder / '_ground_truth' / name}.parquet')")
    return db


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(
    tmp_path: Path, sample: tuple[Path, dict[str, int]]
) -> None:
    again, other = tmp_path / "again", tmp_path / "other"
    gen.generate(CUSTOMERS, SEED, again)
    gen.generate(CUSTOMERS, SEED + 1, other)
    first = landing_files(sample[0])
    assert landing_files(again) == first
    different = landing_files(other)
    assert different.keys() == first.keys()
    assert all(different[name] != first[name] for name in first)


def test_every_source_file_has_the_contract_columns_and_rows(
    sample: tuple[Path, dict[str, int]]
) -> None:
    folder, counts = sample
    assert set(counts) == {s.name for s in SOURCES}
    for source in SOURCES:
        table = read_csv(folder / f"{source.name}.csv")
        assert set(source.required) <= set(table.column_names), source.name
        assert set(table.column_names) <= set(source.known_columns), source.name
        assert table.num_rows == counts[source.name] > 0, source.name
    assert "consent_id" in read_csv(folder / "consents.csv").column_names


def test_truth_lists_every_record_that_carries_a_person_once(
    con: duckdb.DuckDBPyConnection,
) -> None:
    for source in PERSON_SOURCES:
        missing, extra = con.execute(f"""
            with records as (select distinct "{source.record_id}" as id from {source.name}),
            truth_ids as (select source_record_id as id from truth where source = '{source.name}')
            select
                (select count(*) from records where id not in (select id from truth_ids)),
                (select count(*) from truth_ids where id not in (select id from records))
        """).fetchall()[0]
        assert (missing, extra) == (0, 0), source.name
    lines_in_truth = count(con, "select count(*) from truth where source = 'shop_order_lines'")
    assert lines_in_truth == 0
    total, unique = con.execute(
        "select count(*), count(distinct (source, source_record_id)) from truth").fetchall()[0]
    assert total == unique
    unknown = count(
        con, "select count(*) from truth where person_id not in (select person_id from people)")
    assert unknown == 0


def test_the_same_person_is_spelled_differently_across_sources(
    con: duckdb.DuckDBPyConnection,
) -> None:
    emails = con.execute("""
        with raw as (
            select 'shop_orders' as source, order_id as id, email from shop_orders
            union all select 'crm_contacts', contact_id, email from crm_contacts
            union all select 'segment_identifies', id, email from segment_identifies
            union all select 'loyalty_members', loyalty_id, email from loyalty_members
        )
        select person_id, count(distinct raw.email) as spellings
        from raw
        inner join truth on truth.source = raw.source and truth.source_record_id = raw.id
        inner join people using (person_id)
        where lower(trim(raw.email)) = people.email
        group by person_id
        having count(distinct raw.email) >= 2
    """).fetchall()
    assert len(emails) >= 10
    phones = count(con, """
        with raw as (
            select 'shop_orders' as source, order_id as id, phone from shop_orders
            union all select 'crm_contacts', contact_id, phone from crm_contacts
            union all select 'loyalty_members', loyalty_id, phone from loyalty_members
        )
        select count(distinct raw.phone)
        from raw
        inner join truth on truth.source = raw.source and truth.source_record_id = raw.id
        inner join people using (person_id)
        where '+' || regexp_replace(raw.phone, '[^0-9]', '', 'g') = people.phone
            and raw.phone <> people.phone
    """)
    assert phones >= 10  # formatted spellings of E.164 numbers, e.g. '+1 415 555 0134'
    names = count(con, """
        select count(*) from crm_contacts
        where first_name <> trim(first_name) or first_name = upper(first_name)
    """)
    assert names > 0


def test_kiosk_devices_are_shared_by_many_people_and_personal_devices_by_one(
    con: duckdb.DuckDBPyConnection,
) -> None:
    per_device = dict(con.execute("""
        select anonymous_id, count(distinct person_id)
        from segment_pages
        inner join truth on truth.source = 'segment_pages' and truth.source_record_id = id
        group by anonymous_id
    """).fetchall())
    kiosks = {v for (v,) in con.execute(
        "select identifier_value from hubs where kind = 'kiosk_device'").fetchall()}
    assert kiosks and kiosks <= per_device.keys()
    assert max(per_device[k] for k in kiosks) >= 10
    assert all(n == 1 for device, n in per_device.items() if device not in kiosks)


def test_households_share_one_phone_between_two_people(con: duckdb.DuckDBPyConnection) -> None:
    shared = con.execute("""
        select hubs.identifier_value, count(*)
        from hubs
        inner join people on people.phone = hubs.identifier_value
        where hubs.kind = 'household_phone'
        group by 1
    """).fetchall()
    assert shared and all(n == 2 for _, n in shared)


def test_exact_duplicate_deliveries_exist_and_are_whole_row_copies(
    con: duckdb.DuckDBPyConnection,
) -> None:
    duplicated_ids = duplicated_rows = 0
    for name in sorted(shapes.DUPLICATE_SOURCES):
        record_id = SOURCES_BY_NAME[name].record_id
        total, distinct_ids, distinct_rows = con.execute(f"""
            select
                (select count(*) from {name}),
                (select count(distinct "{record_id}") from {name}),
                (select count(*) from (select distinct * from {name}))
        """).fetchall()[0]
        ids, rows = total - distinct_ids, total - distinct_rows
        assert ids == rows, name  # a repeated id is always a repeated row
        duplicated_ids += ids
        duplicated_rows += rows
    assert duplicated_rows > 0


def test_guest_checkouts_have_no_customer_id_but_an_email(con: duckdb.DuckDBPyConnection) -> None:
    guests, with_email = con.execute("""
        select count(*), count(email) from shop_orders
        where shop_customer_id is null or shop_customer_id in ('', 'N/A', 'null')
    """).fetchall()[0]
    registered = count(con, "select count(*) from shop_orders where shop_customer_id like 'cus_%'")
    assert guests > 0 and registered > 0
    assert with_email >= 0.95 * guests


def test_nobody_is_sent_newsletters_after_unsubscribing(con: duckdb.DuckDBPyConnection) -> None:
    events = """
        select person_id, lower(event_type) as event_type,
            try_cast(occurred_at as timestamptz) as occurred_at
        from email_events
        inner join truth on truth.source = 'email_events' and truth.source_record_id = event_id
    """
    unsubscribers, sent_later = con.execute(f"""
        with events as ({events}),
        left_list as (
            select person_id, min(occurred_at) as left_at from events
            where event_type = 'unsubscribe' group by person_id
        )
        select
            (select count(*) from left_list),
            (select count(*) from events inner join left_list using (person_id)
             where event_type = 'delivered' and occurred_at > left_at + interval 1 day)
    """).fetchall()[0]
    assert unsubscribers > 0
    assert sent_later == 0


def test_placeholders_and_unparseable_values_appear(tmp_path: Path) -> None:
    rows = sum(gen.generate(200, 5, tmp_path, bad_row_rate=0.02).values())
    db = load_folder(tmp_path)
    bad = sum(unparseable(db, s, c, cast) for s, c, cast in typed_columns())
    assert 0.005 * rows < bad < 0.05 * rows
    placeholders = count(db, """
        select count(*) from (
            select email from shop_orders union all select email from crm_contacts
            union all select email from segment_identifies union all select phone from crm_contacts
            union all select phone from loyalty_members union all select phone from shop_orders
        ) as contact(value)
        where value in ('test@test.com', 'noemail@noemail.com', 'N/A', '', '0000000000',
                        '123456789', '1111111111', 'none@none.com')
    """)
    assert placeholders > 0


def test_without_bad_rows_every_typed_value_parses(tmp_path: Path) -> None:
    gen.generate(200, 6, tmp_path, bad_row_rate=0.0)
    db = load_folder(tmp_path)
    for source, column, cast in typed_columns():
        assert unparseable(db, source, column, cast) == 0, (source.name, column)
    with_offset = sum(
        count(db, f"""select count(*) from {s.name}
                      where regexp_matches("{c}", '[+-][0-9]{{2}}:[0-9]{{2}}$')""")
        for s, c, cast in typed_columns() if cast == "timestamptz"
    )
    assert with_offset > 0


def test_timestamp_spellings_denote_the_same_instant() -> None:
    seconds = np.array([0, 951_782_400, 1_741_083_072, 1_793_577_599] * 200, dtype=np.int64)
    texts = values.timestamps(seconds, np.random.default_rng(0)).to_pylist()
    assert {len(t) for t in texts} == {20, 24, 25}  # ...Z, ...SS.mmmZ, 'YYYY-MM-DD HH:MM:SS+HH:MM'
    for second, text in zip(seconds, texts):
        parsed = datetime.fromisoformat(text)
        expected = datetime.fromtimestamp(int(second), tz=timezone.utc)
        assert timedelta(0) <= parsed - expected < timedelta(seconds=1), text


def test_purchases_stay_in_the_window_and_repeat_buyers_exist(
    con: duckdb.DuckDBPyConnection,
) -> None:
    first, last = con.execute("""
        select min(try_cast(ordered_at as timestamptz)), max(try_cast(ordered_at as timestamptz))
        from shop_orders
    """).fetchall()[0]
    assert first.date() >= date(2024, 10, 30)
    assert last.date() <= date(2026, 11, 1)
    orders_per_buyer = [n for (n,) in con.execute("""
        select count(distinct source_record_id) from truth
        where source in ('shop_orders', 'pos_transactions') group by person_id
    """).fetchall()]
    assert sum(n == 1 for n in orders_per_buyer) > sum(n >= 5 for n in orders_per_buyer) > 0


def test_parquet_holds_the_same_rows_as_csv_and_replaces_it(tmp_path: Path) -> None:
    gen.generate(150, 3, tmp_path)
    from_csv = {s.name: read_csv(tmp_path / f"{s.name}.csv") for s in SOURCES}
    gen.generate(150, 3, tmp_path, fmt="parquet")
    for source in SOURCES:
        assert not (tmp_path / f"{source.name}.csv").exists(), "stale csv twin left behind"
        from_parquet = pq.read_table(tmp_path / f"{source.name}.parquet")
        assert from_parquet.equals(from_csv[source.name]), source.name


def test_ids_stay_unique_across_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gen, "CHUNK_SIZE", 100)
    gen.generate(350, 4, tmp_path)
    truth = pq.read_table(tmp_path / "_ground_truth" / "truth.parquet").to_pylist()
    keys = [(r["source"], r["source_record_id"]) for r in truth]
    assert len(keys) == len(set(keys))
    lines = read_csv(tmp_path / "shop_order_lines.csv").column("line_id").to_pylist()
    assert len(lines) == len(set(lines))
    people = pq.read_table(tmp_path / "_ground_truth" / "people.parquet")
    emails = [e for e in people.column("email").to_pylist() if e]
    assert people.num_rows == 350 and len(emails) == len(set(emails))
