"""Rectification requests (GDPR Art. 16): validation, and a correction winning survivorship."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest
from engine_support.scratch import ScratchRun

from orchestration import privacy
from orchestration.privacy.requests import invalid_reason, rectification_problem, request_action
from orchestration.warehouse import WarehouseResource


def test_rectification_type_and_validation() -> None:
    assert request_action("Rectification") == "rectify"
    assert request_action("correction") == "rectify"
    base = {"request_type": "rectification", "identifier_value": "ann@x.io"}
    assert invalid_reason({**base, "attribute": "city", "new_value": "Köln"}) is None
    assert "unknown attribute 'shoe_size'" in invalid_reason(
        {**base, "attribute": "shoe_size", "new_value": "44"})
    assert "without attribute" in invalid_reason({**base, "attribute": None, "new_value": "x"})
    # staging says an email attribute's value is no address: the request fails with this detail
    assert "new_value missing or not valid" in rectification_problem(
        "primary_email", "not an address", False)
    assert "new_value missing or not valid" in rectification_problem("city", None)
    # other request types do not need the columns
    assert invalid_reason({"request_type": "erasure", "identifier_value": "ann@x.io"}) is None


def test_a_rectification_wins_survivorship_with_provenance(
        scratch_run: ScratchRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    warehouse = scratch_run.warehouse
    monkeypatch.setenv("CDP_PRIVACY_EXPORT_DIR", str(tmp_path / "exports"))
    with duckdb.connect(str(warehouse)) as con:
        customer_id, email, city = con.execute("""
            select customer_id, primary_email, city from main_marts.customers
            where city is not null and primary_email like '%@%'
            order by customer_id limit 1""").fetchone()
        con.execute("""insert into raw.privacy_requests by name select * from (values
            ('dsr-rect-1', 'email', ?, 'rectification', 'city', '  Neustadt am Rübenberge ',
             timestamp '2026-01-20 10:00:00', 'zz_rect.csv', 1, now()::timestamp),
            ('dsr-rect-2', 'email', ?, 'rectification', 'shoe_size', '44',
             timestamp '2026-01-20 10:00:00', 'zz_rect.csv', 2, now()::timestamp),
            ('dsr-rect-3', 'email', ?, 'rectification', 'primary_email', 'not an address',
             timestamp '2026-01-20 10:00:00', 'zz_rect.csv', 3, now()::timestamp))
            as t(request_id, identifier_type, identifier_value, request_type, attribute,
                 new_value, received_at, _source_file, _source_line, _loaded_at)""",
                    [email.upper(), email, email])
    scratch_run.build("stg_privacy__requests")
    resources = {"warehouse": WarehouseResource(path=str(warehouse))}
    assert dg.materialize([privacy.privacy_requests_executed], resources=resources).success
    scratch_run.build("int_profiles_attribute_candidates+,+customers")

    with duckdb.connect(str(warehouse), read_only=True) as con:
        statuses = dict(con.execute(f"select request_id, status || ': ' || coalesce(detail, '') "
                                    f"from {privacy.REQUESTS} where request_id like 'dsr-rect-%'"
                                    ).fetchall())
        corrections = con.execute(
            "select customer_id, attribute, old_value, new_value, applied_at is not null "
            "from privacy.rectifications").fetchall()
        profile = con.execute("select city, city_source from main_marts.customers "
                              "where customer_id = ?", [customer_id]).fetchone()
    assert statuses["dsr-rect-1"].startswith("finished")
    assert "unknown attribute 'shoe_size'" in statuses["dsr-rect-2"]
    assert statuses["dsr-rect-3"].startswith("failed") and "new_value" in statuses["dsr-rect-3"]
    assert (customer_id, "city", city, "Neustadt am Rübenberge", True) in corrections
    assert profile == ("Neustadt am Rübenberge", "privacy_rectification")

    # a second run executes nothing again: the corrections table is unchanged
    assert dg.materialize([privacy.privacy_requests_executed], resources=resources).success
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from privacy.rectifications").fetchone()[0] == len(
            corrections)

    # the person's erasure forgets the correction: its rows and the corrected value in raw
    with duckdb.connect(str(warehouse)) as con:
        con.execute("""insert into raw.privacy_requests by name select * from (values
            ('dsr-rect-erase', 'email', ?, 'erasure', timestamp '2026-01-21 10:00:00',
             'zz_rect.csv', 4, now()::timestamp))
            as t(request_id, identifier_type, identifier_value, request_type, received_at,
                 _source_file, _source_line, _loaded_at)""", [email])
    assert dg.materialize([privacy.privacy_requests_executed], resources=resources).success
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from privacy.rectifications where customer_id = ?",
                           [customer_id]).fetchone()[0] == 0
        assert con.execute("select new_value from raw.privacy_requests "
                           "where request_id = 'dsr-rect-1'").fetchone() == (None,)
