"""The declared-input examples run through the real pipeline, added by YAML alone.

(1) examples/inputs/lead_ads.yml: a lead-ads export dropped into the landing folder; its people
merge with the sample's profiles (another spelling of a CRM email) or become new profiles, its
submissions are on the timeline, its names survive for new people only, its opt-ins are consents.
(2) examples/inputs/app_installs.yml: a table the test creates directly in the warehouse (no
landing file) is read in place; installs attach to the profile of their user id.
(3) examples/cdnow/cdnow_orders.yml: the public CDNOW purchase log as the only input: one profile
per CDNOW customer, every order on the timeline and counted as a purchase, predictions fitted.

Each run is a `cdp run` subprocess in a copy of the project (the compiler writes the generated
staging models there, never into this repository) with CDP_INPUTS_DIR pointing at a folder that
holds only the example files, unchanged. (1) and (2) share one run with the Segment warehouse
preset of tests/test_inputs_presets.py (`declared_inputs_run`, tests/conftest.py): the sample's
Segment data arrives through the preset there, so a comparison with the built-in run leaves out
the people and events of both input sets.
"""

from __future__ import annotations

import subprocess

import pandas as pd
import pytest

from engine_support.declared_inputs import (EXAMPLE_SOURCES, PRESET_ATTRIBUTE_SOURCES,
                                            PRESET_SOURCES, REPO, SEGMENT_TABLES, DeclaredRun,
                                            Run, cdp_run, write_csv)

CDNOW = REPO / "tests" / "fixtures" / "cdnow" / "CDNOW_sample.txt"

pytestmark = pytest.mark.slow


# --- (1) lead ads and (2) app installs: the shared run of declared inputs --------------------

@pytest.fixture
def leads_run(declared_inputs_run: DeclaredRun) -> DeclaredRun:
    """The session's run of declared inputs (tests/conftest.py): the leads and installs here, the
    Segment preset's tables for tests/test_inputs_presets.py."""
    return declared_inputs_run


def record_customers(run: Run, source: str) -> dict[str, str]:
    frame = run.sql("select source_record_id, customer_id from main_marts.customer_source_records "
                    f"where source = '{source}'")
    return dict(zip(frame["source_record_id"].astype(str), frame["customer_id"].astype(str)))


def test_no_python_or_sql_was_written_for_the_examples() -> None:
    changed = subprocess.run(["git", "status", "--porcelain", "--", "examples"], cwd=REPO,
                             capture_output=True, text=True).stdout
    assert changed == ""  # the examples run as committed
    generated = list((REPO / "models" / "staging" / "inputs").rglob("stg_input__*.sql")) \
        if (REPO / "models" / "staging" / "inputs").exists() else []
    assert generated == []  # nothing generated for them in this repository


def test_leads_of_known_people_merge_into_their_profiles(leads_run: DeclaredRun) -> None:
    leads = record_customers(leads_run.run, "lead_ads")
    crm = record_customers(leads_run.run, "crm_contacts")
    assert len(leads_run.known) == 4
    for lead in leads_run.known:
        assert leads[lead["lead_id"]] == crm[lead["_contact_id"]], lead["lead_id"]


def test_leads_of_strangers_are_new_profiles_with_their_names(leads_run: DeclaredRun) -> None:
    run = leads_run.run
    leads = record_customers(run, "lead_ads")
    others = run.sql("select customer_id, count(*) as n from main_marts.customer_source_records "
                     "where source <> 'lead_ads' group by customer_id")
    known_ids = set(others["customer_id"].astype(str))
    profiles = run.sql("select customer_id, first_name, last_name, primary_email "
                       "from main_marts.customers").set_index("customer_id")
    stranger_ids = [leads[lead["lead_id"]] for lead in leads_run.strangers]
    assert len(set(stranger_ids)) == 3 and not set(stranger_ids) & known_ids
    for index, customer_id in enumerate(stranger_ids):
        row = profiles.loc[customer_id]
        assert (row["first_name"], row["last_name"]) == (f"Zoë{index}", "O'Leary")
        assert row["primary_email"] == f"stranger.lead{index}@leadmail.example.net"
    # for people the CRM knows, the CRM's first name still wins (declared inputs rank last)
    for lead in leads_run.known:
        customer_id = leads[lead["lead_id"]]
        assert profiles.loc[customer_id, "first_name"] not in ("Leadname", None)


def test_lead_identifiers_include_the_new_type_and_e164_phones(leads_run: DeclaredRun) -> None:
    run = leads_run.run
    ids = run.sql("select identifier_type, identifier_value, customer_id "
                  "from main_marts.customer_identities")
    platform = ids[ids["identifier_type"] == "lead_platform_user_id"]
    assert set(platform["identifier_value"]) >= {"fbk0", "fbs0", "fbs2"}
    phones = set(ids.loc[ids["identifier_type"] == "phone", "identifier_value"])
    assert {"+493012345600", "+493012345611", "+493012345622"} <= phones


def test_lead_submissions_and_installs_are_on_the_timeline(leads_run: DeclaredRun) -> None:
    run = leads_run.run
    events = run.sql("select source, source_record_id, event_type, channel, customer_id "
                     "from main_marts.customer_events where source in ('lead_ads', 'app_installs')")
    leads = events[events["source"] == "lead_ads"]
    assert len(leads) == 7
    assert set(leads["event_type"]) == {"lead_submitted"} and set(leads["channel"]) == {"social"}
    assert leads["customer_id"].notna().all()
    installs = events[events["source"] == "app_installs"]
    assert sorted(installs["source_record_id"]) == ["inst-0", "inst-1", "inst-2"]
    assert set(installs["event_type"]) == {"app_installed"}


def test_an_install_joins_the_profile_of_its_user_id(leads_run: DeclaredRun) -> None:
    run = leads_run.run
    installs = record_customers(run, "app_installs")
    ids = run.sql("select identifier_value, customer_id from main_marts.customer_identities "
                  "where identifier_type = 'user_id'")
    by_user = dict(zip(ids["identifier_value"], ids["customer_id"].astype(str)))
    for row in leads_run.installs:
        assert installs[row["install_id"]] == by_user[row["user_id"]]
    devices = run.sql("select identifier_value from main_marts.customer_identities "
                      "where identifier_type = 'app_device_id'")
    assert set(devices["identifier_value"]) == {"dev-0", "dev-1", "dev-2"}


def test_lead_opt_ins_are_consent_decisions(leads_run: DeclaredRun) -> None:
    run = leads_run.run
    leads = record_customers(run, "lead_ads")
    consents = run.sql("select customer_id, consent_status, decision_source "
                       "from main_marts.customer_consents where purpose = 'email_marketing'")
    status = dict(zip(consents["customer_id"].astype(str), consents["consent_status"]))
    source = dict(zip(consents["customer_id"].astype(str), consents["decision_source"]))
    assert status[leads["lead-s0"]] == "granted" and source[leads["lead-s0"]] == "lead_ads"
    assert status[leads["lead-s1"]] == "denied" and source[leads["lead-s1"]] == "lead_ads"


# --- (3) CDNOW as the only input ------------------------------------------------------------

def cdnow_rows() -> list[dict[str, str]]:
    rows = []
    for line_no, line in enumerate(CDNOW.read_text().splitlines(), start=1):
        parts = line.split()
        if len(parts) != 5:
            continue
        customer, _, day, cds, amount = parts
        rows.append({"order_id": f"cdnow-{line_no}", "customer_id": str(int(customer)),
                     "ordered_at": f"{day[:4]}-{day[4:6]}-{day[6:]}T12:00:00Z",
                     "cd_count": cds, "amount": amount})
    return rows


@pytest.fixture(scope="module")
def cdnow_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, list[dict[str, str]]]:
    root = tmp_path_factory.mktemp("inputs_cdnow")
    landing = root / "landing"
    rows = cdnow_rows()
    write_csv(landing / "cdnow_orders.csv", rows)
    run = cdp_run(root, landing, [REPO / "examples/cdnow/cdnow_orders.yml"],
                  extra={"CDP_AS_OF": "1998-06-30"})
    return run, rows


def test_cdnow_alone_gives_one_profile_per_customer(cdnow_run) -> None:
    run, rows = cdnow_run
    customers = {row["customer_id"] for row in rows}
    profiles = run.sql("select count(*) as n from main_marts.customers")
    assert int(profiles["n"][0]) == len(customers) == 2357


def test_cdnow_orders_are_timeline_purchases(cdnow_run) -> None:
    run, rows = cdnow_run
    events = run.sql("select count(*) as n, sum(revenue) as revenue from main_marts.customer_events "
                     "where source = 'cdnow_orders'")
    assert int(events["n"][0]) == len(rows)
    expected = sum(float(row["amount"]) for row in rows)
    assert abs(float(events["revenue"][0]) - expected) < 0.01
    orders = run.sql("select sum(order_count) as n, sum(online_revenue) as revenue "
                     "from main_marts.customers")
    assert int(orders["n"][0]) == len(rows)
    assert abs(float(orders["revenue"][0]) - expected) < 0.01


def test_cdnow_predictions_are_fitted_for_every_customer(cdnow_run) -> None:
    run, rows = cdnow_run
    predictions = run.sql("select count(*) as n, count(p_alive) as fitted, min(p_alive) as low, "
                          "max(p_alive) as high, sum(expected_purchases_365d) as expected "
                          "from predictions.customer_predictions").iloc[0]
    assert int(predictions["n"]) == int(predictions["fitted"]) == 2357
    assert 0 < float(predictions["low"]) <= float(predictions["high"]) <= 1
    # the cohort's next year: fewer purchases than the 18 months observed, but not none
    assert 0 < float(predictions["expected"]) < len(rows)


# --- the built-in sources' marts are untouched ----------------------------------------------

PROFILE_COLUMNS = ("customer_id, first_name, last_name, primary_email, primary_phone, city, "
                   "country_code, loyalty_tier, order_count, online_revenue, store_revenue")


def test_built_in_marts_are_identical_for_everyone_the_new_inputs_do_not_touch(
        leads_run: DeclaredRun, sample_pipeline_run: dict[str, str]) -> None:
    """The same sample landing folder with and without the two declared inputs: every profile,
    identifier and event of a person neither input touches is the same row.

    In the shared run the sample's Segment data arrives through the preset instead of the
    built-in Segment sources (tests/test_inputs_presets.py compares the two): the Segment events
    are left out on both sides, and so are the people of the preset's identifies, whose names
    rank after the built-in sources' there (var survivorship: a declared input comes after the
    listed sources, segment_identifies among them)."""
    run = leads_run.run
    touched = leads_run.touched_by(EXAMPLE_SOURCES + PRESET_ATTRIBUTE_SOURCES)
    declared = EXAMPLE_SOURCES + PRESET_SOURCES
    builtin_segment = [name.removesuffix(".csv") for name in SEGMENT_TABLES.values()]
    before = Run(project=REPO, env=sample_pipeline_run, output="")
    checks = {
        "customers": f"select {PROFILE_COLUMNS} from main_marts.customers",
        "customer_identities": "select customer_id, identifier_type, identifier_value "
                               "from main_marts.customer_identities",
        "customer_events": "select event_id, customer_id, source, event_type, channel, "
                           "occurred_at, revenue from main_marts.customer_events",
    }
    for name, query in checks.items():
        ours = run.sql(query)
        theirs = before.sql(query)
        ours = ours[~ours["customer_id"].astype(str).isin(touched)
                    & ~ours.get("source", pd.Series("", index=ours.index)).isin(declared)]
        theirs = theirs[~theirs["customer_id"].astype(str).isin(touched)
                        & ~theirs.get("source", pd.Series("", index=theirs.index))
                        .isin(builtin_segment)]
        keys = list(ours.columns)
        ours = ours.astype("string").sort_values(keys).reset_index(drop=True)
        theirs = theirs.astype("string").sort_values(keys).reset_index(drop=True)
        assert len(ours) > 100, name
        pd.testing.assert_frame_equal(ours, theirs, check_dtype=False, obj=name)
