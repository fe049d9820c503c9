"""Files, ad-audience and HubSpot-style destinations, each against the real thing."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from activation_support.http_server import LocalDestination
from activation_support.warehouse import config, customers_warehouse, grant_all

from orchestration.activation.destinations.ad_audience import (
    InvalidIdentifier,
    hash_identifier,
    normalise_email,
    normalise_phone,
)
from orchestration.activation.engine import run_sync
from orchestration.activation.state import ROW_ERRORS


@pytest.fixture
def con(tmp_path: Path):
    with customers_warehouse(tmp_path, 12) as connection:
        yield connection


# -- files ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("file_format", ["csv", "parquet", "jsonl"])
def test_files_one_atomic_file_per_batch(con, tmp_path, file_format) -> None:
    out = tmp_path / "out"
    cfg = config(tmp_path, mode="mirror", batch_size=5,
                 destination={"type": "files", "url": str(out), "format": file_format})
    run_sync(con, cfg, "crm")
    con.execute("delete from main_marts.customers where customer_id = 'c000000'")
    run_sync(con, cfg, "crm")
    files = sorted(p.name for p in (out / "crm").iterdir())
    assert not [f for f in files if f.startswith(".")]  # no temporary file left behind
    assert [f.split("-")[0] for f in files].count("upsert") == 3 and len(files) == 4
    records = []
    for name in files:
        path = out / "crm" / name
        if file_format == "csv":
            records += list(csv.DictReader(path.open()))
        elif file_format == "parquet":
            records += pq.read_table(path).to_pylist()
        else:
            records += [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 13
    deleted = [r for r in records if r["_operation"] == "delete"]
    assert [r["_key"] for r in deleted] == ["c000000"]


def test_files_to_an_fsspec_url(con, tmp_path) -> None:
    cfg = config(tmp_path, destination={"type": "files", "url": f"file://{tmp_path}/remote",
                                        "format": "jsonl"})
    assert run_sync(con, cfg, "crm").counts.acknowledged == 12
    assert len(list((tmp_path / "remote" / "crm").glob("upsert-*.jsonl"))) == 1


# -- ad audiences: normalisation rules per platform ---------------------------------------------
def test_email_normalisation_per_platform() -> None:
    raw = "  Jane.Doe+ads@GoogleMail.com "
    assert normalise_email(raw, "google_customer_match") == "jane.doe+ads@googlemail.com"
    assert normalise_email(raw, "meta") == "jane.doe+ads@googlemail.com"
    assert normalise_email(raw, "google_data_manager") == "janedoe@googlemail.com"
    assert normalise_email(raw, "uid2") == "janedoe@googlemail.com"
    # dots and +suffix are kept for every other domain
    assert normalise_email("Jane.Doe+x@Example.com", "uid2") == "jane.doe+x@example.com"
    with pytest.raises(InvalidIdentifier):
        normalise_email("not-an-email", "meta")


def test_phone_normalisation_per_platform() -> None:
    assert normalise_phone("+44 7911 123-456", "google_customer_match") == "+447911123456"
    assert normalise_phone("0044 (7911) 123456", "uid2") == "+447911123456"
    assert normalise_phone("+44 7911 123456", "meta") == "447911123456"
    assert normalise_phone("07911 123456", "meta", default_country_code="44") == "447911123456"
    for invalid in ("07911 123456", "+44 12", "+44 abc 123456", "+1 555 5555555", "+0123456789"):
        with pytest.raises(InvalidIdentifier):
            normalise_phone(invalid, "google_customer_match")


def test_hash_encodings() -> None:
    assert hash_identifier("jane.doe@example.com", "meta") == (
        "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d")
    assert hash_identifier("+447911123456", "google_customer_match") == (
        "20b18ac9de7b3aad174961827d8e451c410af9aedfd1d699927f4b29b81aa1fa")
    assert hash_identifier("+447911123456", "uid2") == "ILGKyd57Oq0XSWGCfY5FHEEK+a7f0daZkn9LKbgaofo="


def read_members(folder: Path, kind: str) -> list[dict[str, str]]:
    return [row for path in sorted(folder.glob(f"{kind}-*.csv"))
            for row in csv.DictReader(path.open())]


def test_audience_add_remove_lists_with_consent_and_rejections(con, tmp_path) -> None:
    grant_all(con, ["advertising"])
    con.execute("""insert into main_marts.customer_consents values
        ('c000001', 'personalisation', 'denied', timestamptz '2024-01-01 00:00:00+00'),
        ('c000002', 'personalisation', 'granted', timestamptz '2024-01-01 00:00:00+00')""")
    con.execute("update main_marts.customers set email = 'Jane.Doe@Example.com ',"
                " phone = '+44 7911 123456' where customer_id = 'c000001'")
    con.execute("update main_marts.customers set email = null, phone = '12'"
                " where customer_id = 'c000003'")  # nothing valid to match on
    con.execute("update main_marts.customers set phone = 'n/a' where customer_id = 'c000004'")
    cfg = config(
        tmp_path, mode="audience", consent_purposes=["advertising"],
        fields={"email": "email", "phone": "phone",
                "ad_user_data": {"consent_status": "advertising"},
                "ad_personalization": {"consent_status": "personalisation"}},
        destination={"type": "ad_audience", "platform": "meta", "url": str(tmp_path / "ads"),
                     "audience": "high_value"})
    result = run_sync(con, cfg, "crm")
    assert result.counts.failed == 1 and result.counts.acknowledged == 11
    folder = tmp_path / "ads" / "high_value" / "meta"
    added = read_members(folder, "add")
    assert len(added) == 11
    jane = next(m for m in added if m["EMAIL"] == hash_identifier("jane.doe@example.com", "meta"))
    assert jane["PHONE"] == hash_identifier("447911123456", "meta")
    assert (jane["ad_user_data"], jane["ad_personalization"]) == ("granted", "denied")
    assert {m["ad_personalization"] for m in added} == {"denied", "granted", "unspecified"}
    errors = dict(con.execute(f"select row_key, error_kind from {ROW_ERRORS}").fetchall())
    assert errors == {"c000003": "rejected", "c000004": "warning"}

    # revoking advertising consent removes the member; only members this sync added are removed
    con.execute("""insert into main_marts.customer_consents values
        ('c000001', 'advertising', 'denied', timestamptz '2025-01-01 00:00:00+00')""")
    second = run_sync(con, cfg, "crm")
    assert second.counts.removed == 1
    removed = read_members(folder, "remove")
    assert [m["EMAIL"] for m in removed] == [jane["EMAIL"]]
    con.execute("delete from main_marts.customers where customer_id = 'c000003'")  # never added
    assert run_sync(con, cfg, "crm").counts.removed == 0


def test_uid2_audience_hashes_base64(con, tmp_path) -> None:
    con.execute("update main_marts.customers set email = 'Jane.Doe+promo@gmail.com'"
                " where customer_id = 'c000000'")
    cfg = config(tmp_path, mode="audience", fields={"email": "email", "phone": "phone"},
                 destination={"type": "ad_audience", "platform": "uid2",
                              "url": str(tmp_path / "ads"), "audience": "all"})
    run_sync(con, cfg, "crm")
    added = read_members(tmp_path / "ads" / "all" / "uid2", "add")
    assert hash_identifier("janedoe@gmail.com", "uid2") in {m["email_hash"] for m in added}
    assert all(m["phone_hash"].endswith("=") for m in added)


# -- HubSpot-style CRM ----------------------------------------------------------------------------
def test_hubspot_batch_upsert_shape_and_per_record_errors(con, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HUBSPOT_TOKEN", "pat-test")
    with LocalDestination() as server:
        server.state.behaviour.expected_token = "pat-test"
        server.state.behaviour.reject_keys = {"user5@example.com"}
        cfg = config(tmp_path, batch_size=5,
                     fields={"email": "email", "firstname": "first_name", "city": "city",
                             "lifetime_value": "lifetime_value", "source": {"constant": "cdp"}},
                     destination={"type": "hubspot", "base_url": server.url})
        result = run_sync(con, cfg, "crm")
        assert server.state.problems == []
        assert result.counts.failed == 1 and result.counts.acknowledged == 11
        request = server.state.requests[0]
        assert request["path"] == "/crm/v3/objects/contacts/batch/upsert"
        first = request["body"]["inputs"][0]
        assert first == {"id": "user0@example.com", "idProperty": "email", "properties": {
            "firstname": "Name0", "city": "City0", "lifetime_value": "0.0", "source": "cdp"}}
        reason = con.execute(f"select reason from {ROW_ERRORS}").fetchone()[0]
        assert reason == "Property values were not valid for user5@example.com"
