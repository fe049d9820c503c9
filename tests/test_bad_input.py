"""Bad landing input, one case per test: what the user sees, and that the last good state stays."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from orchestration.ingestion import (
    NOT_UTF8_REASON,
    LandingFileError,
    LandingLoadError,
    discover_landing,
    load_landing,
    load_source,
)
from orchestration.ingestion.contract import SOURCES_BY_NAME
from orchestration.settings import PROFILES_DIR, PROJECT_DIR

ORDERS_HEADER = "order_id,shop_customer_id,email,phone,ordered_at,total_amount,currency,status"
CONSENTS_HEADER = "identifier_type,identifier_value,purpose,status,occurred_at,source,consent_id"
ORDERS_STATE = "select * from raw.shop_orders order by _source_file, _source_line"
LOG_STATE = ("select _source_file, content_sha256, rows_loaded, rows_rejected, _loaded_at "
             "from raw._load_log where source = 'shop_orders' order by _source_file, _loaded_at")


def order_line(n: int, last_name: str = "Smith") -> str:
    return f"o-{n},c-{n},{last_name.lower()}{n}@example.com,,2025-03-04T10:11:12Z,10.50,EUR,paid"


def orders_text(*lines: str) -> str:
    return "\n".join([ORDERS_HEADER, *lines]) + "\n"


def put(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield connection
    connection.close()


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    """A landing folder whose shop_orders were loaded once, cleanly: the last good state."""
    folder = tmp_path / "landing"
    put(folder / "shop_orders" / "2025-03-01.csv", orders_text(order_line(1), order_line(2)))
    return folder


@pytest.fixture
def good_state(con: duckdb.DuckDBPyConnection, landing: Path) -> tuple[list[tuple], list[tuple]]:
    load_landing(landing, con)
    orders, log = rows(con, ORDERS_STATE), rows(con, LOG_STATE)
    assert len(orders) == 2 and len(log) == 1
    return orders, log


def good_rows_unchanged(con: duckdb.DuckDBPyConnection, good: list[tuple]) -> bool:
    return rows(con, "select * from raw.shop_orders where _source_file = '"
                     "shop_orders/2025-03-01.csv' order by _source_line") == good


# --------------------------------------------------------------------------------------------
# Wrong encoding


def test_latin1_lines_are_rejected_as_not_utf8_naming_file_and_line(
    con: duckdb.DuckDBPyConnection, landing: Path, good_state: tuple[list[tuple], list[tuple]]
) -> None:
    good, _ = good_state
    put(landing / "shop_orders" / "2025-03-02.csv",
        orders_text(order_line(3), order_line(4, "Müller"), order_line(5)).encode("latin-1"))
    report = load_landing(landing, con)

    assert rows(con, "select _source_file, _source_line, column_name, raw_value, reason "
                     "from raw._load_rejects") == [
        ("shop_orders/2025-03-02.csv", 3, "email", order_line(4, "M\ufffdller"),
         NOT_UTF8_REASON)]
    assert NOT_UTF8_REASON.startswith("not valid UTF-8")
    assert report.warnings == ["shop_orders/2025-03-02.csv: 1 line(s) are not valid UTF-8 and "
                               "were rejected; is the file Latin-1 or Windows-1252?"]
    assert rows(con, "select order_id from raw.shop_orders order by 1") == [
        ("o-1",), ("o-2",), ("o-3",), ("o-5",)]  # the other lines of the file load
    assert good_rows_unchanged(con, good)


def test_latin1_header_fails_the_file_naming_the_encoding(
    con: duckdb.DuckDBPyConnection, landing: Path, good_state: tuple[list[tuple], list[tuple]]
) -> None:
    good, log = good_state
    put(landing / "shop_orders" / "2025-03-02.csv",
        (ORDERS_HEADER + ",straße\n" + order_line(3) + ",x\n").encode("cp1252"))
    with pytest.raises(LandingLoadError) as failure:
        load_landing(landing, con)

    (error,) = failure.value.errors
    assert isinstance(error, LandingFileError)
    assert str(error) == (
        "shop_orders/2025-03-02.csv: header line is not valid UTF-8 (byte 0xdf at byte 83), "
        "probably Latin-1 or Windows-1252; landing CSV files must be UTF-8: re-export or "
        "convert the file (e.g. iconv -t UTF-8)")
    assert rows(con, ORDERS_STATE) == good and rows(con, LOG_STATE) == log


def test_utf16_file_fails_naming_the_encoding_and_other_sources_load(
    con: duckdb.DuckDBPyConnection, landing: Path, good_state: tuple[list[tuple], list[tuple]]
) -> None:
    good, log = good_state
    put(landing / "shop_orders" / "2025-03-02.csv",
        orders_text(order_line(3), order_line(4, "Müller")).encode("utf-16"))  # with a BOM
    put(landing / "consents.csv", f"{CONSENTS_HEADER}\nemail,a@b.com,email_marketing,granted,"
                                  "2025-01-01,web,k-1\n")
    with pytest.raises(LandingLoadError) as failure:
        load_landing(landing, con)

    (error,) = failure.value.errors
    assert str(error) == (
        "shop_orders/2025-03-02.csv: is UTF-16 encoded (it starts with the byte-order mark "
        "ff fe); landing CSV files must be UTF-8: re-export or convert the file "
        "(e.g. iconv -t UTF-8)")
    assert "shop_orders: FAILED, nothing changed" in failure.value.report.summary()
    assert rows(con, ORDERS_STATE) == good and rows(con, LOG_STATE) == log
    assert rows(con, "select count(*) from raw.consents") == [(1,)]


def test_utf16_without_byte_order_mark_fails_naming_the_encoding(
    con: duckdb.DuckDBPyConnection, landing: Path, good_state: tuple[list[tuple], list[tuple]]
) -> None:
    good, _ = good_state
    put(landing / "shop_orders" / "2025-03-02.csv", orders_text(order_line(3)).encode("utf-16-le"))
    with pytest.raises(LandingLoadError, match=r"shop_orders/2025-03-02.csv: has NUL bytes in its "
                                               r"header line, so it is probably UTF-16"):
        load_landing(landing, con)
    assert rows(con, ORDERS_STATE) == good


def test_utf8_byte_order_mark_is_accepted(
    con: duckdb.DuckDBPyConnection, landing: Path, good_state: tuple[list[tuple], list[tuple]]
) -> None:
    good, _ = good_state
    put(landing / "shop_orders" / "2025-03-02.csv",
        b"\xef\xbb\xbf" + orders_text(order_line(3, "Müller")).encode("utf-8"))
    put(landing / "consents.csv", b"\xef\xbb\xbf" + f"{CONSENTS_HEADER}\nemail,a@b.com,"
        "email_marketing,granted,2025-01-01,web,k-1\n".encode("utf-8"))
    report = load_landing(landing, con)

    assert report.rows_rejected == 0 and report.warnings == []
    assert rows(con, "select order_id, email, _source_line from raw.shop_orders "
                     "where order_id = 'o-3'") == [("o-3", "müller3@example.com", 2)]
    # The first column is matched by its name, not as "\ufeffidentifier_type".
    assert rows(con, "select identifier_type from raw.consents") == [("email",)]
    columns = {r[0] for r in rows(con, "select column_name from information_schema.columns "
                                       "where table_schema = 'raw'")}
    assert not any(name.startswith("\ufeff") for name in columns)
    assert good_rows_unchanged(con, good)


# --------------------------------------------------------------------------------------------
# Empty files


def test_empty_file_is_skipped_with_a_warning_and_earlier_rows_stay(
    con: duckdb.DuckDBPyConnection, landing: Path, good_state: tuple[list[tuple], list[tuple]]
) -> None:
    good, log = good_state
    put(landing / "shop_orders" / "2025-03-01.csv", b"")  # the loaded file, truncated
    put(landing / "shop_orders" / "2025-03-02.csv", b"")  # a new, empty file
    with gzip.open(landing / "shop_orders" / "2025-03-03.csv.gz", "wb"):
        pass  # valid gzip of nothing
    report = load_landing(landing, con)

    assert report.sources["shop_orders"].files_empty == [
        "shop_orders/2025-03-01.csv", "shop_orders/2025-03-02.csv", "shop_orders/2025-03-03.csv.gz"]
    assert report.warnings[0] == (
        "shop_orders/2025-03-01.csv: empty file (0 bytes), skipped; nothing was loaded from it "
        "and rows of an earlier version of it, if any, are kept")
    assert "shop_orders: 0 file(s) loaded, 0 rows, 0 rejected, 3 empty file(s) skipped" in (
        report.summary())
    assert rows(con, ORDERS_STATE) == good and rows(con, LOG_STATE) == log

    # Once the export is written, it loads.
    put(landing / "shop_orders" / "2025-03-02.csv", orders_text(order_line(3)))
    assert load_landing(landing, con).rows_loaded == 1


def test_header_only_file_loads_zero_rows(
    con: duckdb.DuckDBPyConnection, landing: Path, good_state: tuple[list[tuple], list[tuple]]
) -> None:
    good, _ = good_state
    put(landing / "shop_orders" / "2025-03-02.csv", ORDERS_HEADER + "\n")
    put(landing / "shop_orders" / "2025-03-03.csv", ORDERS_HEADER)  # no final line break
    report = load_landing(landing, con)

    assert report.sources["shop_orders"].files_loaded == [
        "shop_orders/2025-03-02.csv", "shop_orders/2025-03-03.csv"]
    assert (report.rows_loaded, report.rows_rejected, report.warnings) == (0, 0, [])
    assert rows(con, "select _source_file, rows_loaded, rows_rejected from raw._load_log "
                     "where _source_file > 'shop_orders/2025-03-01.csv' order by 1") == [
        ("shop_orders/2025-03-02.csv", 0, 0), ("shop_orders/2025-03-03.csv", 0, 0)]
    assert rows(con, ORDERS_STATE) == good


# --------------------------------------------------------------------------------------------
# Duplicated file


def dbt_build(warehouse: Path, tmp: Path, *select: str) -> None:
    dbt = str(Path(sys.executable).with_name("dbt"))
    result = subprocess.run(
        [dbt, "build", "--select", *select, "--project-dir", str(PROJECT_DIR),
         "--profiles-dir", str(PROFILES_DIR), "--target", "duckdb",
         "--target-path", str(tmp / "dbt_target"), "--log-path", str(tmp / "dbt_logs"), "--quiet"],
        env={**os.environ, "CDP_WAREHOUSE": str(warehouse), "CDP_DBT_TARGET": "duckdb"},
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.slow
def test_same_content_under_a_second_name_is_not_duplicated_in_staging(
    landing: Path, tmp_path: Path
) -> None:
    warehouse = tmp_path / "dup.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        load_landing(landing, con)
        good = rows(con, ORDERS_STATE)
        first = landing / "shop_orders" / "2025-03-01.csv"
        put(landing / "shop_orders" / "2025-03-01 (copy).csv", first.read_bytes())
        report = load_landing(landing, con)

        assert report.warnings == [
            "shop_orders/2025-03-01 (copy).csv: same content as shop_orders/2025-03-01.csv, "
            "which is already loaded; loaded again, staging deduplicates on order_id"]
        assert rows(con, "select count(*) from raw.shop_orders") == [(4,)]  # raw keeps both
        assert rows(con, "select * from raw.shop_orders where _source_file = "
                         "'shop_orders/2025-03-01.csv' order by _source_line") == good
    dbt_build(warehouse, tmp_path, "stg_shop__orders")  # includes its unique(order_id) test

    with duckdb.connect(str(warehouse), read_only=True) as con:
        schema = rows(con, "select table_schema from information_schema.tables "
                           "where table_name = 'stg_shop__orders'")[0][0]
        staged = rows(con, f"select order_id from {schema}.stg_shop__orders order by 1")
    assert staged == [("o-1",), ("o-2",)]


# --------------------------------------------------------------------------------------------
# A file that disappears mid-load


def test_file_that_disappears_mid_load_fails_its_source_and_keeps_last_good_state(
    con: duckdb.DuckDBPyConnection, landing: Path, good_state: tuple[list[tuple], list[tuple]]
) -> None:
    good, log = good_state
    put(landing / "shop_orders" / "2025-03-02.csv", orders_text(order_line(3)))
    vanishing = put(landing / "shop_orders" / "2025-03-03.csv", orders_text(order_line(4)))
    put(landing / "consents.csv", f"{CONSENTS_HEADER}\nemail,a@b.com,email_marketing,granted,"
                                  "2025-01-01,web,k-1\n")
    # The load's own steps in order, with the file removed between discovery and reading.
    root = landing.resolve()
    inventory = discover_landing(root)
    assert inventory.files["shop_orders"][-1].name == "2025-03-03.csv"
    vanishing.unlink()

    with pytest.raises(LandingFileError) as failure:
        load_source(root, con, SOURCES_BY_NAME["shop_orders"], inventory.files["shop_orders"])
    assert str(failure.value) == (
        "shop_orders/2025-03-03.csv: disappeared during the load: it was in the landing folder "
        "when the load started and no longer exists; nothing of source shop_orders was "
        "changed, the next run retries")
    # 2025-03-02.csv was fine, but the source is one transaction: none of it is in raw.
    assert rows(con, ORDERS_STATE) == good and rows(con, LOG_STATE) == log

    # The connection is usable and the next source loads (load_landing catches LandingError).
    consents = load_source(root, con, SOURCES_BY_NAME["consents"], inventory.files["consents"])
    assert consents.rows_loaded == 1
    # The next run retries without the vanished file.
    assert load_landing(landing, con).sources["shop_orders"].files_loaded == [
        "shop_orders/2025-03-02.csv"]


# --------------------------------------------------------------------------------------------
# Paths from the landing folder: symlinks that leave it, names that look like glob patterns


def schema_of(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple]:
    return rows(con, "select column_name, data_type from information_schema.columns "
                     f"where table_schema = 'raw' and table_name = '{table}' "
                     "order by ordinal_position")


def other_tenant(tmp_path: Path) -> Path:
    """Another tenant's landing data, outside this landing folder."""
    folder = tmp_path / "other_tenant"
    put(folder / "shop_orders" / "theirs.csv", orders_text(order_line(900, "Secret")))
    return folder


def test_a_file_symlink_out_of_the_landing_folder_is_refused(
        con: duckdb.DuckDBPyConnection, landing: Path, good_state, tmp_path: Path) -> None:
    good, log = good_state
    (landing / "shop_orders" / "link.csv").symlink_to(
        other_tenant(tmp_path) / "shop_orders" / "theirs.csv")
    with pytest.raises(LandingLoadError) as caught:
        load_landing(landing, con)
    message = str(caught.value)
    assert "shop_orders/link.csv" in message and "outside the landing folder" in message
    assert "secret900" not in message
    assert good_rows_unchanged(con, good) and rows(con, LOG_STATE) == log
    assert rows(con, "select count(*) from raw.shop_orders where email like 'secret%'") == [(0,)]


def test_a_folder_symlink_out_of_the_landing_folder_is_refused(
        con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "shop_orders").symlink_to(other_tenant(tmp_path) / "shop_orders",
                                         target_is_directory=True)
    put(landing / "consents.csv", CONSENTS_HEADER + "\nemail,a@b.io,analytics,granted,"
        "2025-03-04T10:11:12Z,web,c1\n")
    with pytest.raises(LandingLoadError) as caught:
        load_landing(landing, con)
    assert "shop_orders/theirs.csv" in str(caught.value)
    assert "outside the landing folder" in str(caught.value)
    assert rows(con, "select count(*) from raw.shop_orders") == [(0,)]
    assert rows(con, "select count(*) from raw.consents") == [(1,)]  # the rest still loads


def test_a_symlink_to_a_system_file_fails_without_showing_its_content(
        con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    secret = put(tmp_path / "elsewhere" / "passwd", "root:x:0:0:root:/root:/bin/bash\n")
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "shop_orders.csv").symlink_to(secret)
    with pytest.raises(LandingLoadError) as caught:
        load_landing(landing, con)
    assert "shop_orders.csv" in str(caught.value) and "root" not in str(caught.value)


def test_a_symlink_inside_the_landing_folder_still_loads(
        con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    put(landing / "_exports" / "orders-latest.csv", orders_text(order_line(1)))
    (landing / "shop_orders.csv").symlink_to(landing / "_exports" / "orders-latest.csv")
    assert load_landing(landing, con).rows_loaded == 1


@pytest.mark.parametrize("name", ["*.csv", "?.csv", "[ab].csv", "{a,b}.csv"])
def test_file_names_are_read_literally_never_as_glob_patterns(
        con: duckdb.DuckDBPyConnection, tmp_path: Path, name: str) -> None:
    landing = tmp_path / "landing"
    put(landing / "shop_orders" / "a.csv", orders_text(order_line(1)))
    put(landing / "shop_orders" / "b.csv", orders_text(order_line(2)))
    put(landing / "shop_orders" / name, orders_text(order_line(3), order_line(4)))
    report = load_landing(landing, con)
    assert report.rows_loaded == 4
    assert rows(con, "select _source_file, order_id from raw.shop_orders order by 2") == [
        ("shop_orders/a.csv", "o-1"), ("shop_orders/b.csv", "o-2"),
        (f"shop_orders/{name}", "o-3"), (f"shop_orders/{name}", "o-4")]


def test_a_parquet_file_named_like_a_glob_is_read_literally(
        con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    csv_file = put(tmp_path / "orders.csv", orders_text(order_line(7)))
    for name in ("x.parquet", "*.parquet"):
        (landing / "shop_orders").mkdir(parents=True, exist_ok=True)
        con.execute(f"copy (select * from read_csv('{csv_file}', all_varchar = true)) "
                    f"to '{landing / 'shop_orders' / name.replace('*', 'tmp')}' (format parquet)")
    (landing / "shop_orders" / "tmp.parquet").rename(landing / "shop_orders" / "*.parquet")
    assert load_landing(landing, con).rows_loaded == 2


# --------------------------------------------------------------------------------------------
# Limits: columns per file, bytes per value, NUL bytes


def test_a_file_wider_than_the_column_limit_fails_fast_and_changes_nothing(
        con: duckdb.DuckDBPyConnection, landing: Path, good_state) -> None:
    good, log = good_state
    columns_before = schema_of(con, "shop_orders")
    extra = [f"extra_{n}" for n in range(10_000)]
    header = ORDERS_HEADER + "," + ",".join(extra)
    line = order_line(3) + "," * len(extra)
    put(landing / "shop_orders" / "wide.csv", "\n".join([header] + [line] * 200) + "\n")
    with pytest.raises(LandingLoadError) as caught:
        load_landing(landing, con)
    message = str(caught.value)
    assert "shop_orders/wide.csv" in message and "10,008 columns" in message
    assert "limit of 256" in message and "CDP_LANDING_MAX_COLUMNS" in message
    assert schema_of(con, "shop_orders") == columns_before
    assert good_rows_unchanged(con, good) and rows(con, LOG_STATE) == log


def test_the_column_limit_is_configurable(
        con: duckdb.DuckDBPyConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    landing = tmp_path / "landing"
    put(landing / "shop_orders.csv", orders_text(order_line(1)))
    monkeypatch.setenv("CDP_LANDING_MAX_COLUMNS", "7")
    with pytest.raises(LandingLoadError, match="8 columns, more than the limit of 7"):
        load_landing(landing, con)
    monkeypatch.setenv("CDP_LANDING_MAX_COLUMNS", "8")
    assert load_landing(landing, con).rows_loaded == 1


def test_a_value_over_the_field_limit_is_rejected_with_file_line_and_column(
        con: duckdb.DuckDBPyConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDP_LANDING_MAX_FIELD_BYTES", "100")
    landing = tmp_path / "landing"
    long_name = "x" * 101
    put(landing / "shop_orders.csv", orders_text(
        order_line(1), f"o-2,c-2,{'a' * 80}@example.com,,2025-03-04T10:11:12Z,1,EUR,{long_name}",
        order_line(3)))
    report = load_landing(landing, con)
    assert report.rows_loaded == 2 and report.rows_rejected == 1
    assert rows(con, "select _source_file, _source_line, column_name, raw_value, reason "
                     "from raw._load_rejects") == [
        ("shop_orders.csv", 3, "status", long_name, "value of 101 bytes, longer than the limit "
         "of 100 bytes per value (CDP_LANDING_MAX_FIELD_BYTES)")]


def test_nul_bytes_in_values_are_rejected_with_file_line_and_column(
        con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    put(landing / "shop_orders.csv", orders_text(order_line(1)).encode()
        + b"o-2,c-2,ev\x00il@example.com,,2025-03-04T10:11:12Z,1,EUR,paid\n"
        + b"o-3,c-3,x@example.com,,2025-03-04T10:11:12Z,1\x00,EUR,paid\n")
    report = load_landing(landing, con)
    assert report.rows_loaded == 1 and report.rows_rejected == 2
    found = rows(con, "select _source_line, column_name, raw_value, reason "
                      "from raw._load_rejects order by 1")
    assert found[0] == (3, "email", "ev\\0il@example.com",
                        "contains a NUL byte (character 3); NUL is not allowed in text values, "
                        "shown here as \\0")
    assert found[1][:2] == (4, "total_amount")  # a typed value with NUL does not parse
    assert rows(con, "select count(*) from raw.shop_orders where contains(email, chr(0))"
                ) == [(0,)]
