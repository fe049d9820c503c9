"""Normalisation that makes one identifier of one mailbox or one phone: hand-made landing files,
the real loader (phone lookup with libphonenumber), real dbt on a real DuckDB file."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import pytest

from orchestration import phones
from orchestration.ingestion import LoadReport, load_landing
from orchestration.ingestion.contract import SOURCES_BY_NAME
from orchestration.serving.app import normalise_identifier
from orchestration.serving.mailbox import mailbox, mailbox_rules
from orchestration.settings import PROFILES_DIR, PROJECT_DIR

ROSA_PHONE = "+821067253994"
# One person (Rosa) written five ways across four sources; Ben in the default country (US);
# two numbers no country has: a KR national number on a record without a country, and a short one.
LANDING: dict[str, list[dict[str, str]]] = {
    "crm_contacts": [
        {"contact_id": "c-rosa", "email": "Rosa Khan <rosak.han983@gmail.com>",
         "phone": "010-6725-3994", "first_name": "Rosa", "last_name": "Khan", "country": "KR",
         "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"},
        {"contact_id": "c-ben", "email": "ben.stone@corp.io", "phone": "(415) 555-0134",
         "first_name": "Ben", "last_name": "Stone", "country": "USA",
         "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"},
    ],
    "shop_orders": [
        {"order_id": "o-rosa", "email": "RosaKhan983+shop@googlemail.com",
         "phone": "+82 10-6725-3994", "ordered_at": "2026-02-01T10:00:00Z",
         "total_amount": "20.00", "currency": "USD", "status": "completed"},
        {"order_id": "o-ben", "email": "Ben.Stone@corp.io", "phone": "415.555.0134",
         "ordered_at": "2026-02-02T10:00:00Z", "total_amount": "10.00", "currency": "USD",
         "status": "completed"},
        {"order_id": "o-kim", "email": "kim.lee@corp.io", "phone": "010-1234-5678",
         "ordered_at": "2026-02-03T10:00:00Z", "total_amount": "5.00", "currency": "USD",
         "status": "completed"},
    ],
    "segment_identifies": [
        {"id": "i-rosa", "anonymous_id": "anon-rosa-0001", "user_id": "user-rosa-1",
         "timestamp": "2026-02-01T09:00:00Z", "email": "mailto:rosakhan983@gmail.com",
         "phone": "", "first_name": "Rosa", "last_name": "Khan"},
    ],
    "loyalty_members": [
        {"loyalty_id": "LY-ROSA-1", "email": " rosa.khan.983@GMAIL.com. ",
         "phone": "+82 10 6725 3994", "first_name": "Rosa", "last_name": "Khan",
         "tier": "gold", "joined_at": "2026-01-05T00:00:00Z"},
    ],
    "support_tickets": [
        {"ticket_id": "t-zed", "requester_email": "zed@corp.io", "requester_phone": "555-12",
         "channel": "phone", "status": "solved", "created_at": "2026-02-04T10:00:00Z",
         "solved_at": "2026-02-04T11:00:00Z", "csat": "5"},
    ],
}
# What dbt builds for these tests: staging and everything the identity marts need (seeds too).
SELECT = ["path:models/staging", "+customer_identities", "+customer_source_records"]
BUILD = ["build", "--exclude-resource-type", "test", "--exclude-resource-type", "unit_test",
         "--select"]


def write_landing(folder: Path, files: dict[str, list[dict[str, str]]], name: str) -> None:
    """One CSV per source under `<source>/<name>.csv`, columns of the landing contract."""
    for source, rows in files.items():
        path = folder / source / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        columns = list(SOURCES_BY_NAME[source].required)
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows({c: row.get(c, "") for c in columns} for row in rows)


def dbt(env: dict[str, str], target: Path, *args: str) -> None:
    command = [str(Path(sys.executable).with_name("dbt")), *args, "--project-dir",
               str(PROJECT_DIR), "--profiles-dir", str(PROFILES_DIR), "--target", "duckdb",
               "--target-path", str(target / "dbt_target"), "--log-path",
               str(target / "dbt_logs"), "--quiet"]
    result = subprocess.run(command, env=env, cwd=PROJECT_DIR, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


class Built:
    """The warehouse after one load and one dbt run of the hand-made landing files."""

    def __init__(self, warehouse: Path, report: LoadReport) -> None:
        self.warehouse = warehouse
        self.report = report

    def query(self, sql: str, parameters: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.warehouse), read_only=True) as con:
            return con.execute(sql, parameters or []).fetchall()

    def customers_of(self, source: str, *record_ids: str) -> set[str]:
        return {r[0] for r in self.query(
            "select customer_id from main_marts.customer_source_records "
            "where source = ? and list_contains(?, source_record_id)", [source, list(record_ids)])}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("normalisation")
    landing, warehouse = root / "landing", root / "warehouse.duckdb"
    write_landing(landing, LANDING, "2026-02")
    with duckdb.connect(str(warehouse)) as con:
        report = load_landing(landing, con)
    env = {**os.environ, "CDP_WAREHOUSE": str(warehouse), "CDP_DBT_TARGET": "duckdb"}
    env.pop("CDP_AS_OF", None)
    dbt(env, root, *BUILD, *SELECT)
    return Built(warehouse, report)


def test_gmail_dot_and_plus_spellings_are_one_customer(built: Built) -> None:
    rosa = (built.customers_of("crm_contacts", "c-rosa")
            | built.customers_of("shop_orders", "o-rosa")
            | built.customers_of("segment_identifies", "i-rosa")
            | built.customers_of("loyalty_members", "LY-ROSA-1"))
    assert len(rosa) == 1
    emails = built.query("select identifier_value from main_marts.customer_identities "
                         "where customer_id = ? and identifier_type = 'email'", [rosa.pop()])
    assert emails == [("rosakhan983@gmail.com",)]
    assert built.customers_of("crm_contacts", "c-ben") == built.customers_of("shop_orders", "o-ben")


def test_a_display_name_email_parses_and_keeps_its_written_spelling(built: Built) -> None:
    assert built.query("select email, email_original from main_staging.stg_crm__contacts "
                       "where contact_id = 'c-rosa'") == [
        ("rosakhan983@gmail.com", "rosak.han983@gmail.com")]
    assert built.query("select email, email_original from main_staging.stg_loyalty__members") == [
        ("rosakhan983@gmail.com", "rosa.khan.983@gmail.com")]


def test_a_kr_national_number_and_its_plus_82_form_are_one_identifier(built: Built) -> None:
    staged = built.query(
        "select 'crm', phone from main_staging.stg_crm__contacts where contact_id = 'c-rosa' "
        "union all select 'shop', phone from main_staging.stg_shop__orders "
        "where order_id = 'o-rosa' union all select 'loyalty', phone "
        "from main_staging.stg_loyalty__members order by 1")
    assert staged == [("crm", ROSA_PHONE), ("loyalty", ROSA_PHONE), ("shop", ROSA_PHONE)]
    rosa = built.customers_of("crm_contacts", "c-rosa")
    assert built.query("select identifier_value from main_marts.customer_identities "
                       "where identifier_type = 'phone' and list_contains(?, customer_id)",
                       [sorted(rosa)]) == [(ROSA_PHONE,)]
    assert built.query("select phone from main_staging.stg_crm__contacts "
                       "where contact_id = 'c-ben'") == [("+14155550134",)]


def test_an_impossible_number_is_null_and_counted(built: Built) -> None:
    assert built.query("select order_id, phone from main_staging.stg_shop__orders "
                       "where order_id = 'o-kim'") == [("o-kim", None)]
    assert built.query("select phone from main_staging.stg_support__tickets") == [(None,)]
    invalid = built.query(f"select phone_raw, region from {phones.phone_numbers_relation()} "
                          "where not is_valid order by 1")
    assert invalid == [("010-1234-5678", "US"), ("555-12", "US")]
    assert built.report.phones is not None
    assert (built.report.phones.invalid_values, built.report.phones.invalid_rows) == (2, 2)
    assert "2 value(s) in 2 raw row(s) not valid phone numbers" in built.report.summary()
    # never an identifier, in any spelling the old rule produced
    assert built.query("select count(*) from main_marts.customer_identities "
                       "where identifier_type = 'phone' and identifier_value not in (?, ?)",
                       [ROSA_PHONE, "+14155550134"]) == [(0,)]


def test_phone_rules_come_from_dbt_vars_and_use_the_record_country() -> None:
    configured = phones.phone_rules()
    assert configured.default_region == "US"  # var default_phone_country_code: "1"
    rules = phones.PhoneRules(configured.default_region, configured.country_aliases, "valid",
                              configured.columns)
    assert phones.region_of(" United Kingdom ", rules) == "GB"  # var country_aliases
    assert phones.region_of("kr", rules) == "KR"
    assert phones.region_of("Atlantis", rules) == "US"
    assert phones.normalise_phone("020 7946 0958", "uk", rules).phone_e164 == "+442079460958"
    assert phones.normalise_phone("010-6725-3994", None, rules).phone_e164 is None
    possible = phones.PhoneRules(rules.default_region, rules.country_aliases, "possible",
                                 rules.columns)
    assert phones.normalise_phone("(299) 555-0134", None, rules).is_valid is False
    assert phones.normalise_phone("(299) 555-0134", None, possible).phone_e164 == "+12995550134"
    for placeholder in ("0000000000", "(111) 111-1111", "1234567890"):
        assert phones.normalise_phone(placeholder, None, possible).phone_e164 is None


def test_the_lookup_parses_only_new_pairs_and_forgets_pairs_raw_no_longer_holds(
        tmp_path: Path) -> None:
    write_landing(tmp_path / "landing", {"crm_contacts": LANDING["crm_contacts"]}, "a")
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        first = load_landing(tmp_path / "landing", con).phones
        again = phones.refresh_phone_numbers(con)
        con.execute("delete from raw.crm_contacts where contact_id = 'c-ben'")
        pruned = phones.refresh_phone_numbers(con)
        left = con.execute("select phone_raw, country_raw, phone_e164 from "
                           f"{phones.phone_numbers_relation()}").fetchall()
    assert first is not None and (first.parsed, again.parsed) == (2, 0)
    assert pruned.removed == 1
    assert left == [("010-6725-3994", "KR", ROSA_PHONE)]


def test_the_profile_api_finds_every_spelling_staging_wrote(built: Built) -> None:
    """The API's email lookup applies staging's mailbox rules (dbt var email_normalisation, read
    through the catalog): each spelling of the landing files, as a caller would type it, finds
    the identifier the real dbt build stored; a placeholder or invalid address finds none."""
    stored = {value for (value,) in built.query(
        "select identifier_value from main_marts.customer_identities "
        "where identifier_type = 'email'")}
    spellings = {row[column] for rows in LANDING.values() for row in rows
                 for column in ("email", "requester_email") if row.get(column)}
    assert len(spellings) >= 6
    for spelling in spellings:
        assert normalise_identifier("email", spelling) in stored, spelling
    # the rules are the dbt vars, not a copy: another provider list changes the lookup
    rules = mailbox_rules()
    assert mailbox("A.B+x@corp.io", rules) == "a.b+x@corp.io"
    assert mailbox("A.B+x@corp.io", replace(rules, subaddress_domains=frozenset({"corp.io"}),
                                            dots_ignored_domains=frozenset({"corp.io"}))) == \
        "ab@corp.io"
    assert normalise_identifier("email", "Guest+1@gmail.com") not in stored
    assert mailbox("+promo@gmail.com", rules) is None
