"""The landing loader on small real files: rejects, line numbers, idempotency, atomicity."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestration.ingestion import (
    LandingFileError,
    LandingLoadError,
    ensure_raw_schema,
    load_landing,
    load_source,
)
from orchestration.ingestion.contract import SOURCES, SOURCES_BY_NAME

ORDERS_HEADER = "order_id,shop_customer_id,email,phone,ordered_at,total_amount,currency,status"
UTC = dt.timezone.utc


def order_line(n: int, ordered_at: str = "2025-03-04T10:11:12Z", amount: str = "10.50") -> str:
    return f"o-{n},c-{n},user{n}@example.com,+3161234567{n % 10},{ordered_at},{amount},EUR,paid"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def orders_csv(path: Path, *lines: str, header: str = ORDERS_HEADER) -> Path:
    return write(path, "\n".join([header, *lines]) + "\n")


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield connection
    connection.close()


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    folder = tmp_path / "landing"
    folder.mkdir()
    return folder


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def test_every_source_gets_an_empty_typed_table_even_when_absent(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    orders_csv(landing / "shop_orders.csv", order_line(1))
    report = load_landing(landing, con)

    assert report.sources["crm_contacts"].rows_loaded == 0
    for source in SOURCES:
        columns = dict(rows(con, f"select column_name, data_type from information_schema.columns "
                                 f"where table_schema = 'raw' and table_name = '{source.name}'"))
        assert set(source.known_columns) <= set(columns), source.name
        assert {"_source_file", "_source_line", "_loaded_at"} <= set(columns)
    assert rows(con, "select count(*) from raw.crm_contacts") == [(0,)]
    tracks = dict(rows(con, "select column_name, data_type from information_schema.columns "
                            "where table_schema = 'raw' and table_name = 'segment_tracks'"))
    assert tracks["timestamp"] == "TIMESTAMP WITH TIME ZONE"
    assert tracks["revenue"] == "DOUBLE"
    assert tracks["event"] == "VARCHAR"
    assert tracks["_source_line"] == "BIGINT"


def test_ensure_raw_schema_is_repeatable(con: duckdb.DuckDBPyConnection) -> None:
    ensure_raw_schema(con)
    ensure_raw_schema(con)
    tables = {r[0] for r in rows(con, "select table_name from information_schema.tables "
                                      "where table_schema = 'raw'")}
    assert tables == {s.name for s in SOURCES} | {"_load_log", "_load_rejects"}


def test_loads_typed_trimmed_rows_with_file_and_line(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    orders_csv(landing / "shop_orders.csv",
               order_line(1),
               'o-2,  ,"\t Padded@Example.com \r",,2025-03-04 10:11:12, 7 ,EUR,paid')
    report = load_landing(landing, con)

    assert report.sources["shop_orders"].rows_loaded == 2
    assert rows(con, "select order_id, shop_customer_id, email, phone, total_amount, "
                     "_source_file, _source_line from raw.shop_orders order by order_id") == [
        ("o-1", "c-1", "user1@example.com", "+31612345671", 10.5, "shop_orders.csv", 2),
        ("o-2", None, "Padded@Example.com", None, 7.0, "shop_orders.csv", 3),
    ]
    loaded_at = rows(con, "select distinct _loaded_at from raw.shop_orders")
    assert len(loaded_at) == 1 and loaded_at[0][0].tzinfo is not None
    assert "shop_orders: 1 file(s) loaded, 2 rows, 0 rejected" in report.summary()


def test_timestamps_with_offsets_are_stored_as_the_same_utc_instant(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    con.execute("set TimeZone = 'America/New_York'")  # the loader must not depend on the session
    orders_csv(landing / "shop_orders.csv",
               order_line(1, "2025-03-04T10:11:12Z"),
               order_line(2, "2025-03-04 12:11:12+02:00"),
               order_line(3, "2025-03-04 10:11:12"),
               order_line(4, "2025-03-04T05:11:12.250-05:00"))
    load_landing(landing, con)

    instants = rows(con, "select order_id, ordered_at from raw.shop_orders order by order_id")
    expected = dt.datetime(2025, 3, 4, 10, 11, 12, tzinfo=UTC)
    assert [(o, ts.astimezone(UTC)) for o, ts in instants] == [
        ("o-1", expected),
        ("o-2", expected),
        ("o-3", expected),
        ("o-4", expected + dt.timedelta(milliseconds=250)),
    ]


def test_missing_required_column_fails_naming_file_and_column(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    orders_csv(landing / "shop_orders.csv", "o-1,a@b.com", header="order_id,email")
    with pytest.raises(LandingLoadError) as failure:
        load_landing(landing, con)

    message = str(failure.value)
    assert "shop_orders.csv" in message and "total_amount" in message and "ordered_at" in message
    (error,) = failure.value.errors
    assert isinstance(error, LandingFileError) and error.path == "shop_orders.csv"
    assert failure.value.report.sources["shop_orders"].error is not None
    assert rows(con, "select count(*) from raw.shop_orders") == [(0,)]
    assert rows(con, "select count(*) from raw._load_log") == [(0,)]


def test_unparseable_values_go_to_rejects_and_the_rest_loads(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    orders_csv(landing / "shop_orders.csv",
               order_line(1),
               order_line(2, ordered_at="04/03/2025 10:11"),
               order_line(3, amount="\"12,50\""),
               order_line(4, amount=""),
               order_line(5, ordered_at="epoch", amount="NaN"))
    report = load_landing(landing, con)

    assert report.sources["shop_orders"].rows_loaded == 2
    assert report.sources["shop_orders"].rows_rejected == 3
    assert rows(con, "select order_id, total_amount from raw.shop_orders order by 1") == [
        ("o-1", 10.5), ("o-4", None)]
    rejects = rows(con, "select source, _source_file, _source_line, column_name, raw_value, reason "
                        "from raw._load_rejects order by _source_line, column_name")
    assert [r[:5] for r in rejects] == [
        ("shop_orders", "shop_orders.csv", 3, "ordered_at", "04/03/2025 10:11"),
        ("shop_orders", "shop_orders.csv", 4, "total_amount", "12,50"),
        ("shop_orders", "shop_orders.csv", 6, "ordered_at", "epoch"),
        ("shop_orders", "shop_orders.csv", 6, "total_amount", "NaN"),
    ]
    assert "timestamp" in rejects[0][5] and "number" in rejects[1][5]
    log = rows(con, "select _source_file, rows_loaded, rows_rejected from raw._load_log")
    assert log == [("shop_orders.csv", 2, 3)]


def test_malformed_csv_lines_are_rejected_with_their_physical_line(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    write(landing / "shop_orders.csv", "\r\n".join([
        ORDERS_HEADER,
        order_line(1),                                            # line 2
        'o-2,c-2,"a multi-line',                                  # line 3: quoted line breaks
        "",                                                       # line 4: (inside the value)
        'value",,2025-03-04,2,EUR,paid',                          # line 5
        order_line(3) + ",surplus",                               # line 6: too many fields
        "",                                                       # line 7: blank, skipped
        "o-4,c-4,short",                                          # line 8: too few fields
        'o-5,c-5,"x@y"z.com,,2025-03-04,5,EUR,paid',              # line 9: bad quoting
        order_line(6),                                            # line 10
    ]) + "\r\n")
    report = load_landing(landing, con)

    assert rows(con, "select order_id, _source_line from raw.shop_orders order by 1") == [
        ("o-1", 2), ("o-2", 3), ("o-6", 10)]
    assert rows(con, "select email from raw.shop_orders where order_id = 'o-2'") == [
        ("a multi-line\r\n\r\nvalue",)]
    rejects = rows(con, "select _source_line, raw_value, reason from raw._load_rejects "
                        "order by _source_line")
    assert [(line, value) for line, value, _ in rejects] == [
        (6, order_line(3) + ",surplus"),
        (8, "o-4,c-4,short"),
        (9, 'o-5,c-5,"x@y"z.com,,2025-03-04,5,EUR,paid'),
    ]
    assert all(reason.startswith("malformed CSV line") for _, _, reason in rejects)
    assert "too many columns" in rejects[0][2] and "missing columns" in rejects[1][2]
    assert report.sources["shop_orders"].rows_rejected == 3
    assert report.warnings == []  # every line is accounted for: header, blank, rejected, loaded


def test_a_quote_never_closed_rejects_the_rest_of_the_file_visibly(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    orders_csv(landing / "shop_orders.csv",
               order_line(1),
               'o-2,"never closed,x@y.com,,2025-03-04,2,EUR,paid',
               order_line(3))
    report = load_landing(landing, con)

    assert rows(con, "select order_id from raw.shop_orders") == [("o-1",)]
    ((line, value, reason),) = rows(con, "select _source_line, raw_value, reason "
                                         "from raw._load_rejects")
    assert (line, value) == (3, 'o-2,"never closed,x@y.com,,2025-03-04,2,EUR,paid')
    assert "2 line(s)" in reason and "never closed" in reason
    assert report.sources["shop_orders"].rows_rejected == 1
    assert len(report.warnings) == 1 and "shop_orders.csv" in report.warnings[0]


def test_loading_the_same_folder_twice_does_not_duplicate(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    orders_csv(landing / "shop_orders.csv", order_line(1), order_line(2, amount="x"))
    load_landing(landing, con)
    second = load_landing(landing, con)

    assert second.sources["shop_orders"].files_skipped == ["shop_orders.csv"]
    assert second.rows_loaded == 0
    assert rows(con, "select count(*) from raw.shop_orders") == [(1,)]
    assert rows(con, "select count(*) from raw._load_rejects") == [(1,)]
    assert rows(con, "select count(*) from raw._load_log") == [(1,)]


def test_a_changed_file_replaces_its_previous_rows_and_rejects(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    orders = orders_csv(landing / "shop_orders.csv", order_line(1), order_line(2, amount="x"))
    orders_csv(landing / "shop_orders" / "2025-03.csv", order_line(9))
    load_landing(landing, con)
    orders_csv(orders, order_line(1, amount="11"), order_line(2), order_line(3))
    report = load_landing(landing, con)

    assert report.sources["shop_orders"].rows_replaced == 1
    assert report.sources["shop_orders"].files_skipped == ["shop_orders/2025-03.csv"]
    assert rows(con, "select order_id, total_amount, _source_file from raw.shop_orders "
                     "order by 1") == [
        ("o-1", 11.0, "shop_orders.csv"),
        ("o-2", 10.5, "shop_orders.csv"),
        ("o-3", 10.5, "shop_orders.csv"),
        ("o-9", 10.5, "shop_orders/2025-03.csv"),
    ]
    assert rows(con, "select count(*) from raw._load_rejects") == [(0,)]
    assert rows(con, "select count(*) from raw._load_log where _source_file = 'shop_orders.csv'"
                ) == [(2,)]


def test_folder_of_files_with_ignored_and_unknown_entries(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    orders_csv(landing / "shop_orders" / "2025-01.csv", order_line(1))
    with gzip.open(landing / "shop_orders" / "2025-02.csv.gz", "wt") as handle:
        handle.write("\n".join([ORDERS_HEADER, "", "o-x,short", order_line(2)]) + "\n")
    orders_csv(landing / "shop_orders" / "_draft.csv", order_line(3))
    orders_csv(landing / "shop_orders" / ".hidden.csv", order_line(4))
    orders_csv(landing / "_staging" / "shop_orders.csv", order_line(5))
    write(landing / "shop_orders" / "README.txt", "notes")
    write(landing / "mystery.csv", "a,b\n1,2\n")
    report = load_landing(landing, con)

    assert rows(con, "select order_id, _source_file, _source_line from raw.shop_orders "
                     "order by 1") == [
        ("o-1", "shop_orders/2025-01.csv", 2),
        ("o-2", "shop_orders/2025-02.csv.gz", 4),
    ]
    assert rows(con, "select _source_file, _source_line from raw._load_rejects") == [
        ("shop_orders/2025-02.csv.gz", 3)]
    assert len(report.warnings) == 2
    assert any("mystery.csv" in w for w in report.warnings)
    assert any("README.txt" in w for w in report.warnings)
    assert "warning: mystery.csv" in report.summary()


def test_parquet_source_with_typed_columns_and_row_numbers(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    pq.write_table(pa.table({
        "transaction_id": ["t-1", "t-2", "t-3"],
        "store_id": ["s-1", "s-1", " "],
        "loyalty_id": ["l-1", None, "l-3"],
        "transacted_at": pa.array([dt.datetime(2025, 3, 4, 10, 11, 12)] * 3, pa.timestamp("us")),
        "total_amount": ["12.5", "oops", "3"],
        "currency": ["EUR", "EUR", "EUR"],
        "till": [1, 2, 3],
    }), landing / "pos_transactions.parquet")
    report = load_landing(landing, con)

    assert report.sources["pos_transactions"].rows_loaded == 2
    assert rows(con, "select transaction_id, store_id, total_amount, till, transacted_at, "
                     "_source_line from raw.pos_transactions order by 1") == [
        ("t-1", "s-1", 12.5, "1", dt.datetime(2025, 3, 4, 10, 11, 12, tzinfo=UTC), 1),
        ("t-3", None, 3.0, "3", dt.datetime(2025, 3, 4, 10, 11, 12, tzinfo=UTC), 3),
    ]
    assert rows(con, "select _source_file, _source_line, column_name, raw_value "
                     "from raw._load_rejects") == [
        ("pos_transactions.parquet", 2, "total_amount", "oops")]


def test_extra_columns_are_kept_as_text(con: duckdb.DuckDBPyConnection, landing: Path) -> None:
    orders_csv(landing / "shop_orders.csv", order_line(1) + ",42,web",
               header=ORDERS_HEADER + ",Loyalty_Points,channel")
    load_landing(landing, con)

    assert rows(con, "select loyalty_points, channel from raw.shop_orders") == [("42", "web")]
    types = dict(rows(con, "select column_name, data_type from information_schema.columns "
                           "where table_schema = 'raw' and table_name = 'shop_orders'"))
    assert types["loyalty_points"] == "VARCHAR"


def test_failed_load_leaves_previous_state_intact(
    con: duckdb.DuckDBPyConnection, landing: Path, tmp_path: Path
) -> None:
    orders_csv(landing / "shop_orders" / "a.csv", order_line(1), order_line(2))
    orders_csv(landing / "shop_orders" / "b.csv", order_line(3))
    load_landing(landing, con)
    before = rows(con, "select * from raw.shop_orders order by order_id")
    log_before = rows(con, "select * from raw._load_log order by _source_file")

    # a.csv changes (would replace rows), c.csv is new and fine, b.csv loses a required column.
    orders_csv(landing / "shop_orders" / "a.csv", order_line(1, amount="99"))
    orders_csv(landing / "shop_orders" / "c.csv", order_line(4))
    orders_csv(landing / "shop_orders" / "b.csv", "o-3,x", header="order_id,email")
    orders_csv(landing / "consents.csv", "email,a@b.com,marketing,granted,2025-01-01,web,k-1",
               header="identifier_type,identifier_value,purpose,status,occurred_at,source,"
                      "consent_id")
    with pytest.raises(LandingLoadError, match="shop_orders/b.csv"):
        load_landing(landing, con)

    assert rows(con, "select * from raw.shop_orders order by order_id") == before
    assert rows(con, "select * from raw._load_log where source = 'shop_orders' "
                     "order by _source_file") == log_before
    # Other sources still load: each source is its own transaction.
    assert rows(con, "select count(*) from raw.consents") == [(1,)]


def test_load_source_alone(con: duckdb.DuckDBPyConnection, landing: Path) -> None:
    orders_csv(landing / "shop_orders.csv", order_line(1))
    orders_csv(landing / "shop_order_lines.csv", "o-1,l-1,sku,Name,cat,2,3.5",
               header="order_id,line_id,sku,product_name,category,quantity,unit_price")
    report = load_source(landing, con, SOURCES_BY_NAME["shop_order_lines"])

    assert (report.rows_loaded, report.files_loaded) == (1, ["shop_order_lines.csv"])
    assert rows(con, "select quantity, unit_price from raw.shop_order_lines") == [(2.0, 3.5)]
    assert rows(con, "select distinct source from raw._load_log") == [("shop_order_lines",)]


def test_missing_landing_folder_is_an_error(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="does not exist"):
        load_landing(tmp_path / "nowhere", con)
