"""Declared inputs in dbt: a hand-made declared_inputs() and staging model feed identity,
survivorship, consents, purchases and the timeline of a warehouse the sample pipeline built."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from engine_support.project import project_copy

# Two declared inputs, exactly as InputDeclaration.dbt_entry() gives them (orchestration/inputs)
LEAD_ADS = {
    "source": "lead_ads", "model": "stg_input__lead_ads", "record_id": "record_id",
    "seen_at": "occurred_at",
    "identifiers": {"email": "email", "phone": "phone",
                    "lead_platform_user_id": "lead_platform_user_id"},
    "attributes": {"first_name": "first_name", "last_name": "last_name",
                   "primary_email": "email"},
    "identifier_types": {"lead_platform_user_id": {
        "priority": 8, "strong": False, "max_per_customer": 2, "max_profiles": 2,
        "on_conflict": None}},
    "events": {"event_type": "event_type", "channel": "channel", "revenue": None,
               "purchase": None},
    "consents": {"email_marketing": "consent_email_marketing"},
}
WEB_ORDERS = {
    "source": "web_orders", "model": "stg_input__web_orders", "record_id": "record_id",
    "seen_at": "occurred_at", "identifiers": {"email": "email"}, "attributes": {},
    "identifier_types": {},
    "events": {"event_type": "event_type", "channel": "channel", "revenue": "revenue",
               "purchase": "online"},
    "consents": {},
}

MACRO = """{% macro declared_inputs() -%}
    {{ return(ENTRIES) }}
{%- endmacro %}
"""

LEAD_SQL = """with source as (
    select * from {{ source('input_lead_ads', 'lead_ads') }}
)

select
    cast(lead_id as {{ dbt.type_string() }}) as record_id,
    cast(created_time as {{ dbt.type_timestamp() }}) as occurred_at,
    {{ normalize_email('email') }} as email,
    cast(phone_number as {{ dbt.type_string() }}) as phone,
    cast(platform_user_id as {{ dbt.type_string() }}) as lead_platform_user_id,
    first_name,
    last_name,
    'lead_submitted' as event_type,
    'social' as channel,
    cast(null as decimal(18, 2)) as revenue,
    cast(marketing_opt_in as boolean) as consent_email_marketing,
    cast(_loaded_at as {{ dbt.type_timestamp() }}) as loaded_at
from source
"""

ORDERS_SQL = """with source as (
    select * from {{ source('input_web_orders', 'web_orders') }}
)

select
    cast(order_id as {{ dbt.type_string() }}) as record_id,
    cast(ordered_time as {{ dbt.type_timestamp() }}) as occurred_at,
    {{ normalize_email('email') }} as email,
    'order_declared' as event_type,
    'online' as channel,
    cast(amount as decimal(18, 2)) as revenue,
    cast(_loaded_at as {{ dbt.type_timestamp() }}) as loaded_at
from source
"""

BUILD_SELECT = ["+customers", "+customer_events", "+customer_features", "+customer_consents",
                "+customer_identities", "+customer_source_records"]


def write_declared(copy: Path, entries: list[dict[str, Any]]) -> None:
    """The generated macro, hand-made: declared_inputs() returns these entries."""
    rendered = json.dumps(entries).replace("null", "none")
    (copy / "macros" / "generated" / "declared_inputs.sql").write_text(
        MACRO.replace("ENTRIES", rendered))


def write_staging(copy: Path, name: str, sql: str, columns: list[str]) -> None:
    """A staging model stg_input__<name> over raw.<name>, with its source and model YAML."""
    folder = copy / "models" / "staging" / "inputs" / name
    folder.mkdir(parents=True)
    (folder / f"stg_input__{name}.sql").write_text(sql)
    (folder / f"_{name}__sources.yml").write_text(yaml.safe_dump({"version": 2, "sources": [{
        "name": f"input_{name}", "schema": "raw", "description": f"Test input {name}.",
        "tables": [{"name": name, "description": f"Rows of {name}."}]}]}))
    (folder / f"_{name}__models.yml").write_text(yaml.safe_dump({"version": 2, "models": [{
        "name": f"stg_input__{name}", "description": f"Declared input {name}, standard columns.",
        "columns": [{"name": c, "description": c} for c in columns]}]}))


def dbt(copy: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    binary = Path(sys.executable).with_name("dbt")
    return subprocess.run([str(binary), *args, "--profiles-dir", str(copy / "profiles")],
                          cwd=copy, env=env, capture_output=True, text=True, timeout=900)


def rows(con: duckdb.DuckDBPyConnection, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return con.execute(sql, list(params)).fetchall()


@pytest.fixture(scope="module")
def lead_build(tmp_path_factory: pytest.TempPathFactory,
               sample_pipeline_run: dict[str, str]) -> dict[str, Any]:
    """The sample warehouse (a copy) rebuilt by dbt with two declared inputs: a lead of an
    existing CRM customer (their email in another spelling, a new phone), a lead of a stranger,
    and a declared online purchase of the existing customer."""
    root = tmp_path_factory.mktemp("inputs_dbt")
    copy = project_copy(root)
    warehouse = root / "warehouse.duckdb"
    shutil.copy(sample_pipeline_run["CDP_WAREHOUSE"], warehouse)
    now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)

    con = duckdb.connect(str(warehouse))
    customer_id, email, first_name, last_name = rows(con, """
        select c.customer_id, c.primary_email, c.first_name, c.last_name
        from main_marts.customers as c
        where c.first_name_source = 'crm_contacts' and c.last_name_source = 'crm_contacts'
            and c.primary_email like '%@%'
            and c.primary_email in (
                select identifier_value from main_marts.customer_identities
                where identifier_type = 'email')
        order by c.customer_id limit 1""")[0]
    before = {
        "customers": {r[0] for r in rows(con, "select customer_id from main_marts.customers")},
        "revenue": rows(con, "select revenue_total from main_marts.customer_features "
                             "where customer_id = ?", customer_id)[0][0],
    }
    con.execute("create schema if not exists raw")
    con.execute("""create table raw.lead_ads (lead_id varchar, created_time timestamp,
        email varchar, phone_number varchar, platform_user_id varchar, first_name varchar,
        last_name varchar, marketing_opt_in boolean, _loaded_at timestamp)""")
    con.executemany("insert into raw.lead_ads values (?, ?, ?, ?, ?, ?, ?, ?, ?)", [
        # the existing customer, email upper-cased with blanks, a new phone, another first name
        ("lead-1", now - timedelta(days=1), f"  {email.upper()} ", "+4915199900001",
         "plat-1", "Zebedee", last_name, False, now),
        ("lead-2", now - timedelta(days=1), "quinn.stranger@gmx.de", "+4915199900002",
         "plat-2", "Quinn", "Stranger", True, now),
    ])
    con.execute("""create table raw.web_orders (order_id varchar, ordered_time timestamp,
        email varchar, amount decimal(18, 2), _loaded_at timestamp)""")
    con.execute("insert into raw.web_orders values ('wo-1', ?, ?, 123.45, ?)",
                [now - timedelta(days=2), email, now])
    con.close()

    write_declared(copy, [LEAD_ADS, WEB_ORDERS])
    write_staging(copy, "lead_ads", LEAD_SQL, [
        "record_id", "occurred_at", "email", "phone", "lead_platform_user_id", "first_name",
        "last_name", "event_type", "channel", "revenue", "consent_email_marketing", "loaded_at"])
    write_staging(copy, "web_orders", ORDERS_SQL, [
        "record_id", "occurred_at", "email", "event_type", "channel", "revenue", "loaded_at"])

    env = {k: v for k, v in os.environ.items() if not k.startswith("CDP_")}
    env.update({"CDP_WAREHOUSE": str(warehouse), "CDP_DBT_TARGET": "duckdb"})
    result = dbt(copy, env, "build", "--select", *BUILD_SELECT,
                 "--exclude-resource-type", "unit_test")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return {"copy": copy, "env": env, "warehouse": warehouse, "customer_id": customer_id,
            "email": email, "first_name": first_name, "last_name": last_name, **before}


@pytest.mark.slow
def test_declared_leads_merge_survive_consent_and_reach_the_timeline(
        lead_build: dict[str, Any]) -> None:
    existing = lead_build["customer_id"]
    con = duckdb.connect(str(lead_build["warehouse"]), read_only=True)

    # identity: the lead merges into the existing profile, the stranger gets a new one, and the
    # new identifier type is a first-class identifier of both
    lead_customers = {r[0]: r[1:] for r in rows(con, """select source_record_id, customer_id,
        matched_identifier_type from main_marts.customer_source_records
        where source = 'lead_ads'""")}
    assert lead_customers["lead-1"] == (existing, "email")
    stranger, matched = lead_customers["lead-2"]
    assert matched == "email"
    assert stranger is not None and stranger not in lead_build["customers"]
    platform_ids = dict(rows(con, """select identifier_value, customer_id
        from main_marts.customer_identities where identifier_type = 'lead_platform_user_id'"""))
    assert platform_ids == {"plat-1": existing, "plat-2": stranger}
    phones = {r[0] for r in rows(con, """select identifier_value
        from main_marts.customer_identities where customer_id = ? and identifier_type = 'phone'""",
        existing)}
    assert "+4915199900001" in phones

    # survivorship: the stranger's name comes from the lead, the CRM name is not overridden
    names = {r[0]: r[1:] for r in rows(con, """select customer_id, first_name, first_name_source
        from main_marts.customers where customer_id in (?, ?)""", existing, stranger)}
    assert names[stranger] == ("Quinn", "lead_ads")
    assert names[existing] == (lead_build["first_name"], "crm_contacts")

    # timeline: lead events and the declared order carry the customer ids
    events = {r[0]: r[1:] for r in rows(con, """select source_record_id, customer_id, event_type,
        channel, revenue from main_marts.customer_events where source in ('lead_ads', 'web_orders')
        """)}
    assert events["lead-1"] == (existing, "lead_submitted", "social", None)
    assert events["lead-2"] == (stranger, "lead_submitted", "social", None)
    assert events["wo-1"][:3] == (existing, "order_declared", "online")
    assert float(events["wo-1"][3]) == 123.45

    # consents: the leads' opt-in columns are decisions of their profiles, source = the input
    consents = {r[0]: r[1:] for r in rows(con, """select customer_id, consent_status,
        decision_source from main_marts.customer_consents
        where purpose = 'email_marketing' and customer_id in (?, ?)""", existing, stranger)}
    assert consents[stranger] == ("granted", "lead_ads")
    assert consents[existing] == ("denied", "lead_ads")

    # purchases: the declared online order counts in the features
    revenue = rows(con, "select revenue_total from main_marts.customer_features "
                        "where customer_id = ?", existing)[0][0]
    assert float(revenue) == pytest.approx(float(lead_build["revenue"]) + 123.45)
    con.close()


@pytest.mark.slow
def test_a_new_type_declared_twice_differently_or_clashing_with_the_var_fails_naming_both(
        lead_build: dict[str, Any]) -> None:
    copy, env = lead_build["copy"], lead_build["env"]
    other = json.loads(json.dumps(LEAD_ADS))
    other.update({"source": "lead_ads_linkedin", "model": "stg_input__lead_ads"})
    other["identifier_types"]["lead_platform_user_id"]["priority"] = 9
    write_declared(copy, [LEAD_ADS, other])
    result = dbt(copy, env, "compile", "--select", "int_identity_identifiers_observed")
    assert result.returncode != 0
    assert ("declared inputs 'lead_ads' and 'lead_ads_linkedin' declare new identifier type "
            "'lead_platform_user_id' with different rules") in result.stdout

    same = json.loads(json.dumps(LEAD_ADS))
    same.update({"source": "lead_ads_linkedin"})
    write_declared(copy, [LEAD_ADS, same])  # one new type, the same rules twice: fine
    result = dbt(copy, env, "compile", "--inline", "{{ identity_types()['lead_platform_user_id'] }}")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "'priority': 8" in result.stdout and "'strong': False" in result.stdout

    clashing = json.loads(json.dumps(WEB_ORDERS))
    clashing["identifier_types"] = {"email": {"priority": 5, "strong": True}}
    write_declared(copy, [clashing])
    result = dbt(copy, env, "compile", "--select", "int_identity_identifiers_observed")
    assert result.returncode != 0
    assert ("declared input 'web_orders' declares new identifier type 'email', which var "
            "identity.identifier_types already defines") in result.stdout


@pytest.mark.slow
def test_survivorship_lists_a_declared_input_after_the_configured_sources(
        lead_build: dict[str, Any]) -> None:
    copy, env = lead_build["copy"], lead_build["env"]
    write_declared(copy, [LEAD_ADS])
    result = dbt(copy, env, "compile", "--inline",
                 "{{ survivorship_rules()['first_name']['sources'] | join(',') }}|"
                 "{{ survivorship_rules()['primary_email'].get('sources') }}|"
                 "{{ identity_sources(links=true)[-1]['source'] }}")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "crm_contacts,loyalty_members,segment_identifies,lead_ads|None|lead_ads" in result.stdout


@pytest.mark.slow
def test_with_no_input_declared_the_macros_give_exactly_the_configured_vars(
        lead_build: dict[str, Any]) -> None:
    """The built-in sources' models read declared inputs only through these macros (and loops
    over declared_inputs(), empty here), so with [] they compile as before declared inputs."""
    copy, env = lead_build["copy"], lead_build["env"]
    write_declared(copy, [])
    result = dbt(copy, env, "compile", "--inline",
                 "{{ identity_sources() == var('identity')['sources'] }}|"
                 "{{ identity_types() == var('identity')['identifier_types'] }}|"
                 "{{ survivorship_rules() == var('survivorship') }}")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "True|True|True" in result.stdout
