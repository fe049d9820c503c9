"""Identity resolution: real dbt runs on a real DuckDB file with hand-made staged records.

The staging views are replaced by tables of the same names and columns (main_staging.stg_*), and
only the identity/profile models are run, so each test controls its graph exactly.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from engine_support.scratch import fresh_file

ROOT = Path(__file__).resolve().parents[1]
DBT = str(ROOT / ".venv" / "bin" / "dbt")
SELECT = [
    "path:models/intermediate/identity",
    "path:models/intermediate/profiles",
    "path:models/marts/identity",
    "path:models/marts/customers",
    # suppressed identifiers feed the graph; consent columns feed customers
    "path:models/intermediate/privacy",
    "path:models/marts/privacy",
    "consent_purposes",
]

STAGING: dict[str, str] = {
    "stg_segment__identifies": "identify_id varchar, anonymous_id varchar, user_id varchar, "
    "email varchar, phone varchar, first_name varchar, last_name varchar, "
    "occurred_at timestamp, received_at timestamp, loaded_at timestamp",
    "stg_segment__tracks": "track_id varchar, anonymous_id varchar, user_id varchar, "
    "event_name varchar, occurred_at timestamp, product_id varchar, order_id varchar, "
    "revenue decimal(18,2), loaded_at timestamp",
    "stg_segment__pages": "page_view_id varchar, anonymous_id varchar, user_id varchar, "
    "occurred_at timestamp, url varchar, path varchar, referrer varchar, title varchar, loaded_at timestamp",
    "stg_crm__contacts": "contact_id varchar, email varchar, phone varchar, first_name varchar, "
    "last_name varchar, city varchar, country_code varchar, created_at timestamp, "
    "updated_at timestamp, loaded_at timestamp",
    "stg_shop__orders": "order_id varchar, shop_customer_id varchar, email varchar, "
    "phone varchar, first_name varchar, last_name varchar, ordered_at timestamp, "
    "total_amount decimal(18,2), currency_code varchar, "
    "order_status varchar, loaded_at timestamp",
    "stg_shop__order_lines": "order_line_id varchar, order_id varchar, sku varchar, "
    "product_name varchar, category varchar, quantity integer, unit_price decimal(18,2), "
    "line_amount decimal(18,2), loaded_at timestamp",
    "stg_pos__transactions": "transaction_id varchar, store_id varchar, loyalty_id varchar, "
    "transacted_at timestamp, total_amount decimal(18,2), currency_code varchar, loaded_at timestamp",
    "stg_loyalty__members": "loyalty_id varchar, email varchar, phone varchar, "
    "first_name varchar, last_name varchar, loyalty_tier varchar, joined_at timestamp, loaded_at timestamp",
    "stg_email__events": "email_event_id varchar, email varchar, campaign_id varchar, "
    "event_type varchar, occurred_at timestamp, loaded_at timestamp",
    "stg_support__tickets": "ticket_id varchar, email varchar, phone varchar, channel varchar, "
    "ticket_status varchar, created_at timestamp, solved_at timestamp, csat integer, loaded_at timestamp",
    "stg_consent__consents": "consent_id varchar, identifier_type varchar, "
    "identifier_value varchar, purpose varchar, consent_status varchar, "
    "occurred_at timestamp, consent_source varchar, loaded_at timestamp",
    "stg_privacy__requests": "request_id varchar, identifier_type varchar, "
    "identifier_value varchar, request_type varchar, received_at timestamp, loaded_at timestamp",
}


def project_vars() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "dbt_project.yml").read_text())["vars"]


class Warehouse:
    """A scratch DuckDB file with staged tables and a way to run the identity models on it.

    Every test's file sits at one path of the session, with a dbt target folder per identity
    configuration: dbt keys its partial parse on the profile (which holds the warehouse path)
    and the --vars, so a dbt invocation with a path and vars seen before reuses that parse
    instead of paying a full one."""

    def __init__(self, path: Path) -> None:
        self.path = fresh_file(path)
        self.identity: dict[str, Any] = copy.deepcopy(project_vars()["identity"])
        con = duckdb.connect(str(path))
        con.execute("create schema if not exists main_staging")
        for table, columns in STAGING.items():
            con.execute(f"create table main_staging.{table} ({columns})")
        con.close()

    def insert(self, table: str, *rows: dict[str, Any]) -> None:
        con = duckdb.connect(str(self.path))
        for row in rows:
            names = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            con.execute(f"insert into main_staging.{table} ({names}) values ({marks})",
                        list(row.values()))
        con.close()

    def dbt(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CDP_WAREHOUSE": str(self.path), "CDP_DBT_TARGET": "duckdb"}
        env.pop("CDP_AS_OF", None)
        return subprocess.run(
            [DBT, *args, "--profiles-dir", "profiles", *self.vars_args(self.path)],
            cwd=ROOT, env=env, capture_output=True, text=True, check=False,
        )

    def vars_args(self, path: Path) -> list[str]:
        """--vars with this test's identity settings, and dbt target and log folders kept for
        the database path and those settings (a parse made for them is valid for them)."""
        identity = json.dumps({"identity": self.identity}, sort_keys=True)
        key = hashlib.sha256(identity.encode()).hexdigest()[:12]
        target = path.parent / f"dbt_target_{path.stem}_{key}"
        return ["--vars", identity, "--target-path", str(target), "--log-path",
                str(target / "logs")]

    def run(self) -> str:
        result = self.dbt("build", "--indirect-selection", "cautious", "--select", *SELECT)
        assert result.returncode == 0, result.stdout[-4000:]
        return result.stdout

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        con = duckdb.connect(str(self.path), read_only=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def customer_of(self, identifier_type: str, value: str) -> str | None:
        rows = self.query(
            "select customer_id from main_marts.customer_identities "
            f"where identifier_type = '{identifier_type}' and identifier_value = '{value}'")
        return rows[0][0] if rows else None


@pytest.fixture(scope="session")
def identity_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("identity_scratch")


@pytest.fixture
def warehouse(identity_root: Path) -> Warehouse:
    return Warehouse(identity_root / "identity.duckdb")


T0 = "2024-01-01 00:00:00"


def identify(i: str, *, user: str | None = None, anon: str | None = None,
             email: str | None = None, phone: str | None = None,
             at: str = T0, first_name: str | None = None,
             last_name: str | None = None) -> dict[str, Any]:
    return {"identify_id": i, "user_id": user, "anonymous_id": anon, "email": email,
            "phone": phone, "occurred_at": at, "received_at": at, "first_name": first_name,
            "last_name": last_name}


def test_stitches_sources_and_ids_are_stable_across_runs(warehouse: Warehouse) -> None:
    warehouse.insert("stg_segment__identifies",
                     identify("i1", user="u1", anon="a1", email="ann@x.com", first_name="Ann"))
    warehouse.insert("stg_shop__orders", {"order_id": "o1", "shop_customer_id": "s1",
                                          "email": "ann@x.com", "ordered_at": T0,
                                          "total_amount": 10, "order_status": "completed"})
    warehouse.insert("stg_segment__pages", {"page_view_id": "p1", "anonymous_id": "a1",
                                            "occurred_at": T0})
    warehouse.insert("stg_pos__transactions", {"transaction_id": "t1", "loyalty_id": "L9",
                                               "transacted_at": T0, "total_amount": 5})
    warehouse.insert("stg_consent__consents", {"consent_id": "c1", "identifier_type": "email",
                                               "identifier_value": "ann@x.com",
                                               "purpose": "email_marketing",
                                               "consent_status": "granted", "occurred_at": T0})
    warehouse.run()
    ann = warehouse.customer_of("email", "ann@x.com")
    assert ann is not None
    for identifier_type, value in [("user_id", "u1"), ("anonymous_id", "a1"),
                                   ("shop_customer_id", "s1")]:
        assert warehouse.customer_of(identifier_type, value) == ann
    assert warehouse.customer_of("loyalty_id", "L9") not in (None, ann)
    records = dict(warehouse.query(
        "select customer_source_record_id, customer_id from main_marts.customer_source_records"))
    assert records["consents:c1"] == ann and records["segment_pages:p1"] == ann
    profile = warehouse.query(
        "select first_name, first_name_source, order_count, revenue, sources_seen "
        f"from main_marts.customers where customer_id = '{ann}'")
    assert profile[0][:4] == ("Ann", "segment_identifies", 1, 10)

    before = warehouse.query("select identity_id, customer_id from main_marts.customer_identities")
    warehouse.run()
    after = warehouse.query("select identity_id, customer_id from main_marts.customer_identities")
    assert sorted(before) == sorted(after)
    assert warehouse.query("select count(*) from main_marts.customer_id_merges") == [(0,)]


def test_merge_keeps_the_larger_profile_id_and_retired_id_resolves(warehouse: Warehouse) -> None:
    warehouse.insert("stg_segment__identifies",
                     identify("i1", user="u1", anon="a1", email="ann@x.com"),
                     identify("i2", user="u1", anon="a2"))
    warehouse.insert("stg_crm__contacts", {"contact_id": "c7", "email": "ann.work@y.com",
                                           "updated_at": T0, "created_at": T0})
    warehouse.run()
    ann = warehouse.customer_of("user_id", "u1")
    work = warehouse.customer_of("email", "ann.work@y.com")
    assert ann != work

    # new data: Ann identifies with her work address, so both profiles are one person
    warehouse.insert("stg_segment__identifies",
                     identify("i3", user="u1", email="ann.work@y.com", at="2024-02-01 00:00:00"))
    warehouse.run()
    assert warehouse.customer_of("crm_contact_id", "c7") == ann
    assert warehouse.customer_of("anonymous_id", "a2") == ann
    merges = warehouse.query("select old_customer_id, new_customer_id, current_customer_id "
                             "from main_marts.customer_id_merges")
    assert merges == [(work, ann, ann)]
    # lookups by the retired id resolve to the survivor
    resolved = warehouse.query(
        "select coalesce(m.current_customer_id, ids.id) from (select '" + work + "' as id) ids "
        "left join main_marts.customer_id_merges m on m.old_customer_id = ids.id")
    assert resolved == [(ann,)]


def test_limit_drops_the_weaker_edge_not_the_profile(warehouse: Warehouse) -> None:
    # one email, two user ids: u1 is seen with it three times, u2 once; user_id conflicts set to
    # keep the strongest link (the default, on_conflict: exclude, is tested below)
    warehouse.identity["identifier_types"]["user_id"]["on_conflict"] = "drop_weaker"
    warehouse.insert("stg_segment__identifies",
                     identify("i1", user="u1", email="shared@x.com"),
                     identify("i2", user="u1", email="shared@x.com"),
                     identify("i3", user="u1", email="shared@x.com", anon="a1"),
                     identify("i4", user="u2", email="shared@x.com", anon="a2"))
    warehouse.run()
    u1 = warehouse.customer_of("user_id", "u1")
    u2 = warehouse.customer_of("user_id", "u2")
    assert u1 != u2
    assert warehouse.customer_of("email", "shared@x.com") == u1
    assert warehouse.customer_of("anonymous_id", "a2") == u2
    dropped = warehouse.query("select identifier_value_a, identifier_value_b, drop_reason "
                              "from main_marts.identity_edges where not is_kept")
    assert dropped == [("shared@x.com", "u2", "limit:user_id")]


def test_blocklist_applies_to_history_and_the_split_is_recorded(warehouse: Warehouse) -> None:
    warehouse.insert("stg_segment__identifies",
                     identify("i1", user="u1", email="ann@x.com"),
                     identify("i2", user="u1", email="ann@x.com", anon="a1"),
                     identify("i3", user="u1", email="front.desk@shop.com"))
    warehouse.insert("stg_crm__contacts", {"contact_id": "c9", "email": "front.desk@shop.com",
                                           "updated_at": T0, "created_at": T0})
    warehouse.run()
    ann = warehouse.customer_of("user_id", "u1")
    assert warehouse.customer_of("crm_contact_id", "c9") == ann

    warehouse.identity["blocklist"] = [
        {"identifier_type": "email", "identifier_value": "front.desk@shop.com"}]
    warehouse.run()
    assert warehouse.customer_of("user_id", "u1") == ann  # the larger part keeps the id
    contact = warehouse.customer_of("crm_contact_id", "c9")
    assert contact not in (None, ann)
    assert warehouse.customer_of("email", "front.desk@shop.com") is None
    assert warehouse.query("select exclusion_reason from main_marts.identity_exclusions") == [
        ("blocklist",)]
    splits = warehouse.query("select customer_id, split_customer_id, reason "
                             "from main_marts.customer_splits")
    assert splits == [(ann, contact, "blocklist")]


def test_hub_identifiers_are_excluded_with_a_reason(warehouse: Warehouse) -> None:
    # a store kiosk device used by two people, and an email linked to many crm contacts
    warehouse.insert("stg_segment__identifies",
                     identify("i1", user="u1", anon="kiosk", email="ann@x.com"),
                     identify("i2", user="u2", anon="kiosk", email="bob@x.com"),
                     identify("i3", user="u1", anon="ann-phone"))
    warehouse.insert("stg_crm__contacts", *[
        {"contact_id": f"c{i}", "email": "info@shop.com", "updated_at": T0, "created_at": T0}
        for i in range(5)])
    warehouse.identity["hub_max_strong_neighbours"] = 3
    warehouse.identity["identifier_types"]["crm_contact_id"]["max_per_customer"] = None
    warehouse.run()
    assert warehouse.customer_of("user_id", "u1") != warehouse.customer_of("user_id", "u2")
    assert warehouse.customer_of("anonymous_id", "ann-phone") == warehouse.customer_of(
        "user_id", "u1")
    excluded = dict(warehouse.query(
        "select identity_id, exclusion_reason from main_marts.identity_exclusions"))
    assert excluded == {"anonymous_id:kiosk": "shared", "email:info@shop.com": "hub"}
    contacts = {warehouse.customer_of("crm_contact_id", f"c{i}") for i in range(5)}
    assert len(contacts) == 5


def test_explain_path_lists_the_edges_and_their_records(warehouse: Warehouse) -> None:
    warehouse.insert("stg_segment__identifies", identify("i1", user="u1", anon="a1"),
                     identify("i2", user="u1", email="ann@x.com"))
    warehouse.insert("stg_loyalty__members", {"loyalty_id": "L1", "email": "ann@x.com",
                                              "joined_at": T0})
    warehouse.run()
    result = warehouse.dbt(
        "run-operation", "explain_identity_link", "--args",
        json.dumps({"type_a": "anonymous_id", "value_a": "a1",
                    "type_b": "loyalty_id", "value_b": "L1"}))
    assert result.returncode == 0, result.stdout
    assert "Linked in 3 kept edge(s)" in result.stdout
    assert "anonymous_id:a1  --  user_id:u1   (segment_identifies i1)" in result.stdout
    assert "email:ann@x.com  --  loyalty_id:L1   (loyalty_members L1)" in result.stdout
    unrelated = warehouse.dbt(
        "run-operation", "explain_identity_link", "--args",
        json.dumps({"type_a": "anonymous_id", "value_a": "a1",
                    "type_b": "email", "value_b": "nobody@x.com"}))
    assert "Not linked" in unrelated.stdout


def test_a_long_chain_converges_in_few_rounds(warehouse: Warehouse) -> None:
    # 10,000 user ids chained through 10,000 emails, node ids in random order along the chain
    n = 10_000
    rng = random.Random(5)
    labels = rng.sample(range(10**6, 10**7), 2 * n)
    rows = []
    for i in range(n):
        rows.append((f"r{i}a", f"u{labels[i]}", f"e{labels[n + i]}@x.com"))
        if i + 1 < n:
            rows.append((f"r{i}b", f"u{labels[i + 1]}", f"e{labels[n + i]}@x.com"))
    con = duckdb.connect(str(warehouse.path))
    con.executemany("insert into main_staging.stg_segment__identifies "
                    "(identify_id, user_id, email, occurred_at) values (?, ?, ?, '2024-01-01')",
                    rows)
    con.close()
    for settings in warehouse.identity["identifier_types"].values():
        settings["max_per_customer"] = None
    warehouse.identity["hub_max_strong_neighbours"] = 10
    warehouse.run()
    assert warehouse.query("select count(distinct customer_id), count(*) "
                           "from main_marts.customer_identities") == [(1, 2 * n)]
    rounds = warehouse.query("select max(rounds) from main_intermediate.int_identity_components")
    strong_rounds = warehouse.query(
        "select max(rounds) from main_intermediate.int_identity_strong_components")
    assert strong_rounds[0][0] <= 20 and rounds[0][0] <= 20


def test_reaching_the_round_cap_fails_loudly(warehouse: Warehouse) -> None:
    warehouse.insert("stg_segment__identifies", identify("i1", user="u1", email="a@x.com"),
                     identify("i2", user="u2", email="a@x.com"),
                     identify("i3", user="u2", email="b@x.com"))
    for settings in warehouse.identity["identifier_types"].values():
        settings["max_per_customer"] = None
    warehouse.identity["max_rounds"] = 1
    result = warehouse.dbt("run", "--select", "int_identity_strong_components+",
                           "path:models/intermediate/identity",
                           "int_privacy_suppressed_identifiers")
    assert result.returncode != 0
    assert "not converged after 1 rounds" in result.stdout


def _full_refresh_copy(warehouse: Warehouse, *models: str) -> tuple[Path, str]:
    """A copy of the warehouse with `models` rebuilt from scratch (--full-refresh); dbt's log.
    At one path of the session, with dbt target folders as the Warehouse's (vars_args)."""
    full = fresh_file(warehouse.path.with_name("full.duckdb"))
    shutil.copy(warehouse.path, full)
    env = {**os.environ, "CDP_WAREHOUSE": str(full), "CDP_DBT_TARGET": "duckdb"}
    env.pop("CDP_AS_OF", None)
    result = subprocess.run(
        [DBT, "run", "--full-refresh", "--profiles-dir", "profiles", "--select", *models,
         *warehouse.vars_args(full)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    return full, result.stdout


def _without_limits(warehouse: Warehouse) -> None:
    """No per-profile limits and a high hub threshold: random graphs merge freely."""
    for settings in warehouse.identity["identifier_types"].values():
        settings["max_per_customer"] = None
    warehouse.identity["hub_max_strong_neighbours"] = 1000


def _random_identifies(rng: random.Random, prefix: str, count: int) -> list[dict[str, Any]]:
    """Records linking random users, emails and devices drawn from small pools (many merges)."""
    return [identify(f"{prefix}{i}", user=f"u{rng.randrange(600)}",
                     email=f"e{rng.randrange(900)}@x.com" if rng.random() < 0.8 else None,
                     anon=f"a{rng.randrange(1500)}" if rng.random() < 0.5 else None)
            for i in range(count)]


def _components(path: Path) -> dict[str, list[tuple[int, int]]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {model: sorted(con.execute(
            f"select node_id, component_id from main_intermediate.{model}").fetchall())
            for model in ("int_identity_strong_components", "int_identity_components")}
    finally:
        con.close()


def test_incremental_restitching_equals_a_full_computation(warehouse: Warehouse) -> None:
    rng = random.Random(11)
    _without_limits(warehouse)
    warehouse.insert("stg_segment__identifies", *_random_identifies(rng, "i", 700))
    first = warehouse.run()
    assert "int_identity_components: full computation" in first
    nodes_before = warehouse.query("select count(*) from main_intermediate.int_identity_components")
    ids_before = dict(warehouse.query(
        "select identifier_key, customer_id from main_intermediate.int_identity_customer_ids_assigned"))

    # new records (some new people, some linking existing profiles), removed records (splits)
    # and a newly blocklisted email that held profiles together
    warehouse.insert("stg_segment__identifies", *_random_identifies(rng, "n", 20),
                     identify("solo1", user="fresh1", email="fresh1@x.com"))
    con = duckdb.connect(str(warehouse.path))
    con.execute("delete from main_staging.stg_segment__identifies "
                "where identify_id in ('i1', 'i2', 'i3', 'i4', 'i5')")
    busiest = con.execute("select email from main_staging.stg_segment__identifies "
                          "where email is not null group by email "
                          "order by count(*) desc, email limit 1").fetchone()[0]
    con.close()
    warehouse.identity["blocklist"].append({"identifier_type": "email",
                                            "identifier_value": busiest})
    second = warehouse.run()
    restitched = re.search(r"int_identity_components: incremental, (\d+) node", second)
    assert restitched, second[-3000:]
    assert 0 < int(restitched.group(1)) < nodes_before[0][0]

    # the same tables computed from scratch on a copy of the warehouse
    full, stdout = _full_refresh_copy(warehouse, "int_identity_strong_components",
                                      "int_identity_components")
    assert "int_identity_components: full computation" in stdout
    assert _components(warehouse.path) == _components(full)

    # people the change did not touch keep their customer ids
    ids_after = dict(warehouse.query(
        "select identifier_key, customer_id from main_intermediate.int_identity_customer_ids_assigned"))
    kept = sum(ids_after.get(key) == customer for key, customer in ids_before.items())
    assert kept > 0.5 * len(ids_before)
    assert ids_after["user_id:fresh1"] == ids_after["email:fresh1@x.com"]


def test_the_timeline_rewrites_only_touched_events_and_equals_a_rebuild(
        warehouse: Warehouse) -> None:
    rng = random.Random(23)
    _without_limits(warehouse)
    warehouse.insert("stg_segment__identifies", *_random_identifies(rng, "i", 400))
    warehouse.insert("stg_segment__pages", *[
        {"page_view_id": f"p{i}", "anonymous_id": f"a{rng.randrange(1500)}",
         "user_id": f"u{rng.randrange(600)}" if rng.random() < 0.3 else None,
         "occurred_at": T0} for i in range(600)])
    warehouse.insert("stg_email__events", *[  # records whose only identifier is an email
        {"email_event_id": f"m{k}", "email": f"e{k}@x.com", "event_type": "open",
         "occurred_at": T0} for k in range(900)])
    con = duckdb.connect(str(warehouse.path))
    for table in ("stg_segment__identifies", "stg_segment__pages", "stg_email__events"):
        con.execute(f"update main_staging.{table} set loaded_at = '{T0}'")
    con.close()
    warehouse.run()
    events = {row[0]: row for row in warehouse.query(
        "select event_id, customer_id from main_marts.customer_events")}

    # an event of a person the next batch does not touch, altered by hand: a run that rebuilt
    # the whole table would overwrite it
    untouched = warehouse.query(
        "select event_id from main_marts.customer_events "
        "where source = 'segment_pages' and customer_id is not null "
        "order by event_id limit 1")[0][0]
    (untouched_customer,), = warehouse.query(
        f"select customer_id from main_marts.customer_events where event_id = '{untouched}'")
    (user, user_customer), = warehouse.query(
        "select identifier_value, customer_id from main_marts.customer_identities "
        f"where identifier_type = 'user_id' and customer_id <> '{untouched_customer}' "
        "order by identifier_value limit 1")
    (email,), = warehouse.query(
        "select min(identifier_value) from main_marts.customer_identities "
        f"where identifier_type = 'email' "
        f"and customer_id not in ('{user_customer}', '{untouched_customer}')")
    (split_by,), = warehouse.query(
        "select identifier_value from main_marts.customer_identities "
        "where identifier_type = 'email' "
        f"and customer_id not in ('{user_customer}', '{untouched_customer}') "
        "and customer_id in (select customer_id from main_marts.customer_identities "
        "  group by customer_id having count(*) > 6) order by identifier_value limit 1")
    con = duckdb.connect(str(warehouse.path))
    con.execute("update main_marts.customer_events set channel = 'altered' "
                f"where event_id = '{untouched}'")
    # the batch: new records (a new person, a record joining two profiles), a new version of a
    # page view (loaded later, new time), and a newly blocklisted email that splits a profile
    warehouse_new = [identify("n1", user="newbie", email="newbie@x.com"),
                     identify("n2", user=user, email=email)]
    con.execute("update main_staging.stg_segment__pages set occurred_at = '2024-02-02', "
                "loaded_at = '2024-02-02' where page_view_id = 'p7'")
    con.close()
    warehouse.insert("stg_segment__identifies", *warehouse_new)
    warehouse.identity["blocklist"].append({"identifier_type": "email",
                                            "identifier_value": split_by})
    warehouse.run()

    after = {row[0]: row for row in warehouse.query(
        "select event_id, customer_id, channel, occurred_at from main_marts.customer_events")}
    assert after[untouched][2] == "altered"
    assert str(after["segment_pages:p7"][3]).startswith("2024-02-02")
    assert after["segment_identifies:n2"][1] is not None
    split_events = [e for e in after if e.startswith("email_events:")
                    and e == f"email_events:m{split_by[1:].split('@')[0]}"]
    assert split_events and after[split_events[0]][1] is None  # blocklisted: no customer now
    moved = sum(after[e][1] != events[e][1] for e in events if e in after)
    assert moved > 0  # the merge re-keyed events of existing profiles

    full, _ = _full_refresh_copy(warehouse, "customer_events")
    con = duckdb.connect(str(full), read_only=True)
    rebuilt = {row[0]: row for row in con.execute(
        "select event_id, customer_id, channel, occurred_at from main_marts.customer_events")
        .fetchall()}
    con.close()
    rebuilt[untouched] = (*rebuilt[untouched][:2], "altered", rebuilt[untouched][3])
    assert after == rebuilt


def _buyer_and_merge_pair(warehouse: Warehouse) -> tuple[str, str, str, str, str, str]:
    """A profile and one of its emails (the buyer), and a user_id and an email of two other
    profiles (identifying them together merges them): buyer, buyer_email, user, user_customer,
    email, email_customer."""
    (buyer, buyer_email), = warehouse.query(
        "select customer_id, min(identifier_value) from main_marts.customer_identities "
        "where identifier_type = 'email' group by customer_id order by customer_id limit 1")
    (user, user_customer), = warehouse.query(
        "select identifier_value, customer_id from main_marts.customer_identities "
        f"where identifier_type = 'user_id' and customer_id <> '{buyer}' "
        "order by identifier_value limit 1")
    (email, email_customer), = warehouse.query(
        "select identifier_value, customer_id from main_marts.customer_identities "
        f"where identifier_type = 'email' and customer_id not in ('{buyer}', '{user_customer}') "
        "order by identifier_value limit 1")
    return buyer, buyer_email, user, user_customer, email, email_customer


def test_profiles_rebuild_only_touched_customers_and_equal_a_rebuild(
        warehouse: Warehouse) -> None:
    rng = random.Random(31)
    _without_limits(warehouse)
    warehouse.insert("stg_segment__identifies", *_random_identifies(rng, "i", 300))
    warehouse.insert("stg_shop__orders", *[
        {"order_id": f"o{k}", "email": f"e{k}@x.com", "ordered_at": T0, "total_amount": 10,
         "order_status": "completed"} for k in range(0, 900, 3)])
    warehouse.run()

    def profiles() -> dict[str, tuple[Any, ...]]:
        return {row[0]: row for row in warehouse.query(
            "select customer_id, first_name, order_count, revenue, identifier_count, "
            "sources_seen from main_marts.customers")}

    before = profiles()
    # a new order of an existing customer, by an email already in the profile: no identifier
    # moves, only the timeline says the profile changed
    buyer, buyer_email, user, user_customer, email, email_customer = _buyer_and_merge_pair(
        warehouse)
    untouched = sorted(set(before) - {buyer, user_customer, email_customer})[0]
    con = duckdb.connect(str(warehouse.path))
    con.execute("update main_marts.customers set first_name = 'Altered' "
                f"where customer_id = '{untouched}'")
    con.close()
    warehouse.insert("stg_shop__orders", {"order_id": "new1", "email": buyer_email,
                                          "ordered_at": T0, "total_amount": 7,
                                          "order_status": "completed"})
    warehouse.insert("stg_segment__identifies", identify("merge1", user=user, email=email))
    warehouse.run()

    after = profiles()
    assert after[untouched][1] == "Altered"
    assert after[buyer][2] == before[buyer][2] + 1
    assert after[buyer][3] == before[buyer][3] + 7
    merged = {user_customer, email_customer}
    assert len(merged & set(after)) == 1  # the retired id left, the survivor holds both
    survivor = (merged & set(after)).pop()
    assert after[survivor][4] == before[user_customer][4] + before[email_customer][4]

    full, _ = _full_refresh_copy(warehouse, "customers")
    con = duckdb.connect(str(full), read_only=True)
    rebuilt = {row[0]: row for row in con.execute(
        "select customer_id, first_name, order_count, revenue, identifier_count, "
        "sources_seen from main_marts.customers").fetchall()}
    con.close()
    rebuilt[untouched] = (untouched, "Altered", *rebuilt[untouched][2:])
    assert after == rebuilt


@pytest.mark.slow
def test_quality_against_the_generator_truth(tmp_path: Path) -> None:
    """Generator data scored against its ground truth: precision >= 0.99, <= 2 people a profile."""
    from identity_support.quality import score
    from orchestration.ingestion import load_landing
    from tools.sample_data import generate

    landing = tmp_path / "landing"
    generate(customers=3000, seed=21, out=landing)
    path = tmp_path / "quality.duckdb"
    con = duckdb.connect(str(path))
    load_landing(landing, con)
    con.close()
    env = {**os.environ, "CDP_WAREHOUSE": str(path), "CDP_DBT_TARGET": "duckdb"}
    env.pop("CDP_AS_OF", None)
    result = subprocess.run(
        [DBT, "build", "--exclude-resource-type", "test", "unit_test", "--profiles-dir", "profiles",
         "--select", "path:models/staging", *SELECT],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-4000:]
    con = duckdb.connect(str(path), read_only=True)
    quality = score(con, landing / "_ground_truth" / "truth.parquet")
    con.close()
    assert quality.precision >= 0.99
    assert quality.max_people_per_profile <= 2
    assert quality.recall >= 0.8


FEATURE_MODELS = ["int_transactions_attributed", "int_customers_features_touched",
                  "int_customers_purchases_summarised", "int_customers_web_summarised",
                  "int_customers_email_summarised", "int_customers_support_summarised",
                  "customer_features"]


def test_features_recompute_only_touched_customers_and_equal_a_rebuild(
        warehouse: Warehouse) -> None:
    rng = random.Random(37)
    _without_limits(warehouse)
    recent = (datetime.now(timezone.utc) - timedelta(days=10)).strftime("%Y-%m-%d %H:%M:%S")
    warehouse.insert("stg_segment__identifies", *_random_identifies(rng, "i", 300))
    warehouse.insert("stg_shop__orders", *[
        {"order_id": f"o{k}", "email": f"e{k}@x.com", "ordered_at": recent, "total_amount": 10,
         "order_status": "completed"} for k in range(0, 900, 3)])
    warehouse.insert("stg_segment__tracks", *[
        {"track_id": f"t{k}", "user_id": f"u{k}", "event_name": "Product Added",
         "occurred_at": recent} for k in range(0, 600, 5)])

    def build() -> str:
        result = warehouse.dbt("build", "--indirect-selection", "cautious",
                               "--select", *SELECT, *FEATURE_MODELS)
        assert result.returncode == 0, result.stdout[-4000:]
        return result.stdout

    columns = ("customer_id, orders_total, revenue_total, orders_30d, cart_adds_30d, "
               "web_sessions_30d, has_cart_without_purchase, emails_delivered_90d")

    def features(path: Path = warehouse.path) -> dict[str, tuple[Any, ...]]:
        con = duckdb.connect(str(path), read_only=True)
        try:
            return {row[0]: row for row in con.execute(
                f"select {columns} from main_marts.customer_features").fetchall()}
        finally:
            con.close()

    def touched() -> int:
        return warehouse.query(
            "select count(*) from main_intermediate.int_customers_features_touched")[0][0]

    build()
    before = features()
    assert touched() == len(before)  # the first build computes everyone
    buyer, buyer_email, user, user_customer, email, email_customer = _buyer_and_merge_pair(
        warehouse)
    untouched = sorted(set(before) - {buyer, user_customer, email_customer})[0]
    con = duckdb.connect(str(warehouse.path))
    con.execute("update main_marts.customer_features set orders_total = 999 "
                f"where customer_id = '{untouched}'")
    con.close()
    # a new order by an email already in a profile (only the timeline says it changed), a merge,
    # and a cart of a known user
    warehouse.insert("stg_shop__orders", {"order_id": "new1", "email": buyer_email,
                                          "ordered_at": recent, "total_amount": 7,
                                          "order_status": "completed"})
    warehouse.insert("stg_segment__identifies", identify("merge1", user=user, email=email))
    (cart_user, cart_customer), = warehouse.query(
        "select identifier_value, customer_id from main_marts.customer_identities "
        f"where identifier_type = 'user_id' and customer_id not in ('{buyer}', '{untouched}', "
        f"'{user_customer}', '{email_customer}') order by identifier_value desc limit 1")
    warehouse.insert("stg_segment__tracks", {"track_id": "cart1", "user_id": cart_user,
                                             "event_name": "Product Added",
                                             "occurred_at": recent})
    build()

    after = features()
    assert 3 <= touched() < len(before) / 4
    assert after[untouched][1] == 999  # not recomputed
    assert after[buyer][1:3] == (before[buyer][1] + 1, before[buyer][2] + 7)
    assert after[cart_customer][4] == before[cart_customer][4] + 1
    merged = {user_customer, email_customer}
    assert len(merged & set(after)) == 1  # the retired id left with its rows
    survivor = (merged & set(after)).pop()
    assert after[survivor][1] == before[user_customer][1] + before[email_customer][1]

    full, _ = _full_refresh_copy(warehouse, *FEATURE_MODELS)
    rebuilt = features(full)
    rebuilt[untouched] = (untouched, 999, *rebuilt[untouched][2:])
    assert after == rebuilt

    # the first run of a new UTC day recomputes everyone: windows move with the date
    con = duckdb.connect(str(warehouse.path))
    con.execute("update main_marts.customer_features set as_of_at = as_of_at - interval 1 day")
    con.close()
    build()
    assert touched() == len(after)
    assert features()[untouched][1] == before[untouched][1]


def test_tables_built_before_their_watermark_take_the_full_path_once(
        warehouse: Warehouse) -> None:
    """An upgrade: customers and customer_events built by a version without their watermark
    columns; the next run rewrites them whole instead of failing, then runs incrementally."""
    warehouse.insert("stg_segment__identifies", *_random_identifies(random.Random(3), "i", 50))
    warehouse.run()
    con = duckdb.connect(str(warehouse.path))
    con.execute("alter table main_marts.customers drop column timeline_written_at")
    con.execute("alter table main_marts.customer_events drop column written_at")
    con.execute("alter table main_marts.customer_events drop column loaded_at")
    con.execute("update main_marts.customers set first_name = 'Stale'")
    con.close()
    warehouse.run()
    assert warehouse.query("select count(*) from main_marts.customers "
                           "where first_name = 'Stale' or timeline_written_at is null") == [(0,)]
    assert warehouse.query("select count(*) from main_marts.customer_events "
                           "where written_at is null") == [(0,)]


def exclusions(warehouse: Warehouse) -> dict[str, tuple[Any, ...]]:
    return {row[0]: row[1:] for row in warehouse.query(
        "select identity_id, exclusion_reason, is_excluded, evidence_type, evidence_count, "
        "evidence_examples, exclusion_detail from main_marts.identity_exclusions")}


def test_a_junk_email_is_found_by_the_data_without_a_list(warehouse: Warehouse) -> None:
    # a guest-checkout placeholder on no list: eight orders and three CRM contacts of strangers
    warehouse.insert("stg_shop__orders", *[
        {"order_id": f"o{i}", "email": "customer@store.com", "phone": f"+1415555{1000 + i}",
         "ordered_at": T0} for i in range(8)])
    warehouse.insert("stg_crm__contacts", *[
        {"contact_id": f"c{i}", "email": "customer@store.com", "phone": f"+1415555{1000 + i}",
         "first_name": name, "last_name": "Lee", "updated_at": T0, "created_at": T0}
        for i, name in enumerate(["Ann", "Bo", "Cy"])])
    # a real customer: three phones, a nickname, one mailbox; her phones stay hers
    warehouse.insert("stg_segment__identifies",
                     identify("i1", user="u1", email="liz@x.com", phone="+12125550101",
                              first_name="Elizabeth", last_name="Berg"),
                     identify("i2", user="u1", email="liz@x.com", phone="+12125550102",
                              first_name="Liz", last_name="Berg"),
                     identify("i3", user="u1", email="liz@x.com", phone="+12125550103"))
    warehouse.run()
    excluded = exclusions(warehouse)
    reason, is_excluded, evidence_type, count, examples, detail = excluded["email:customer@store.com"]
    assert (reason, is_excluded, evidence_type, count) == ("junk", True, "phone", 8)
    assert examples == "+14155551000, +14155551001, +14155551002"
    assert "8 distinct phone (max 6)" in detail
    assert len({warehouse.customer_of("crm_contact_id", f"c{i}") for i in range(3)}) == 3
    assert warehouse.customer_of("email", "customer@store.com") is None
    assert not [key for key in excluded if "liz" in key or "21255501" in key]
    liz = warehouse.customer_of("user_id", "u1")
    assert {warehouse.customer_of("phone", f"+1212555010{i}") for i in (1, 2, 3)} == {liz}

    # the threshold is a var: at 8 distinct phones the placeholder is no longer junk (only the
    # phone limit cuts its weaker links)
    warehouse.identity["junk_max_distinct"]["default"]["phone"] = 8
    warehouse.run()
    assert exclusions(warehouse)["email:customer@store.com"][:2] == ("conflict", False)


def test_a_mailbox_two_people_order_with_is_found_by_their_billing_names(
        warehouse: Warehouse) -> None:
    # Ana's account and mailbox; her partner Omar orders with her mailbox under his own billing
    # name and phone
    warehouse.insert("stg_segment__identifies",
                     identify("i1", user="u1", email="ana.kim@x.com", first_name="Ana",
                              last_name="Kim"))
    warehouse.insert("stg_shop__orders", *[
        {"order_id": f"o{i}", "email": "ana.kim@x.com", "phone": "+12125550177",
         "first_name": "Omar", "last_name": "Diaz", "ordered_at": T0} for i in range(2)])
    warehouse.run()
    reason, is_excluded, evidence_type, count, examples, _ = exclusions(warehouse)[
        "email:ana.kim@x.com"]
    assert (reason, is_excluded, evidence_type, count) == ("junk", True, "last_name", 2)
    assert examples == "diaz, kim"
    assert warehouse.customer_of("phone", "+12125550177") != warehouse.customer_of("user_id", "u1")

    # without billing names (an export that leaves them out) nothing tells the two apart
    con = duckdb.connect(str(warehouse.path))
    con.execute("update main_staging.stg_shop__orders set first_name = null, last_name = null")
    con.close()
    warehouse.run()
    assert warehouse.customer_of("phone", "+12125550177") == warehouse.customer_of("user_id", "u1")


def _two_fragments(warehouse: Warehouse, crm_first_name: str) -> None:
    # one person split in two strong profiles (two spellings of her mailbox that no rule joins),
    # her own phone on both
    warehouse.insert("stg_segment__identifies",
                     identify("i1", user="u1", email="rosa.khan@x.com", phone="+12125550199",
                              first_name="Rosa", last_name="Khan"),
                     identify("i2", user="u1", anon="a1"))
    warehouse.insert("stg_crm__contacts", {
        "contact_id": "c1", "email": "rosakhan@x.com", "phone": "+12125550199",
        "first_name": crm_first_name, "last_name": "Khan", "updated_at": T0, "created_at": T0})


def test_a_persons_own_phone_is_not_excluded_when_her_fragments_meet(warehouse: Warehouse) -> None:
    _two_fragments(warehouse, crm_first_name="Rosa")
    warehouse.run()
    assert "phone:+12125550199" not in exclusions(warehouse)
    rosa = warehouse.customer_of("user_id", "u1")
    assert warehouse.customer_of("phone", "+12125550199") == rosa
    assert warehouse.customer_of("crm_contact_id", "c1") == rosa


def test_a_phone_between_two_different_people_is_shared(warehouse: Warehouse) -> None:
    _two_fragments(warehouse, crm_first_name="Omar")  # different names: different people
    warehouse.run()
    reason, is_excluded, evidence_type, count, examples, _ = exclusions(warehouse)[
        "phone:+12125550199"]
    assert (reason, is_excluded, evidence_type, count) == ("shared", True, "name", 2)
    assert examples == "omar khan, rosa khan"
    assert warehouse.customer_of("crm_contact_id", "c1") != warehouse.customer_of("user_id", "u1")


def test_two_user_ids_on_one_mailbox_conflict_unless_the_account_migrated(
        warehouse: Warehouse) -> None:
    # a couple on one mailbox, both accounts in use at the same time: two people
    warehouse.insert("stg_segment__identifies",
                     identify("i1", user="u1", email="home@x.com", at="2024-01-01 00:00:00"),
                     identify("i2", user="u2", email="home@x.com", at="2024-01-02 00:00:00"),
                     identify("i3", user="u1", email="home@x.com", at="2024-01-03 00:00:00"),
                     identify("i4", user="u2", anon="a2", at="2024-01-04 00:00:00"))
    # an account moved to a new user id: the old one is never seen after the new one appears
    warehouse.insert("stg_segment__identifies",
                     identify("m1", user="old-7", email="moved@x.com", at="2024-01-01 00:00:00"),
                     identify("m2", user="old-7", anon="a7", at="2024-01-05 00:00:00"),
                     identify("m3", user="new-7", email="moved@x.com", at="2024-02-01 00:00:00"),
                     identify("m4", user="new-7", anon="a8", at="2024-02-03 00:00:00"))
    warehouse.run()
    assert warehouse.customer_of("user_id", "u1") != warehouse.customer_of("user_id", "u2")
    assert warehouse.customer_of("email", "home@x.com") is None
    excluded = exclusions(warehouse)
    assert excluded["email:home@x.com"][:5] == ("shared", True, "user_id", 2, "u1, u2")
    moved = warehouse.customer_of("user_id", "new-7")
    assert moved == warehouse.customer_of("user_id", "old-7") == warehouse.customer_of(
        "anonymous_id", "a7")
    assert excluded["email:moved@x.com"][:5] == (
        "account_migration", False, "user_id", 2, "new-7, old-7")

    # the rule is configurable: without the migration exception the moved account is a conflict
    warehouse.identity["account_migrations"] = {"types": []}
    warehouse.run()
    assert warehouse.customer_of("user_id", "new-7") != warehouse.customer_of("user_id", "old-7")
    assert exclusions(warehouse)["email:moved@x.com"][0] == "shared"
