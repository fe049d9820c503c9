"""Declared inputs (inputs/*.yml) reach the loader, the phone lookup and privacy like built-ins.

The lead-ads example is copied to a temporary CDP_INPUTS_DIR and its export dropped into a
temporary landing folder: the real loader loads it on DuckDB and PostgreSQL (typed, rejects, load
log), an invalid declaration is warned about while the built-in sources still load, its phones
land in raw._phone_numbers in E.164, and a real erasure deletes the person's lead rows while a
declared warehouse relation (the user's own table) is only reported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import duckdb
import pytest

from orchestration import privacy
from orchestration.ingestion import landing_sources, load_landing
from orchestration.ingestion.assets import LOADED_SOURCES
from orchestration.ingestion.contract import SOURCES
from orchestration.ingestion.target import load_landing_into
from orchestration.settings import PROJECT_DIR
from orchestration.warehouse import open_warehouse
from tests.test_privacy import SMALL_WAREHOUSE_SQL, small_log

EXAMPLE = PROJECT_DIR / "examples" / "inputs" / "lead_ads.yml"
LEAD_HEADER = ("lead_id,created_time,email,phone_number,country,platform_user_id,first_name,"
               "last_name,marketing_opt_in,campaign_name,form_name\n")
LEADS = LEAD_HEADER + (
    "L-1,2026-03-01T10:00:00Z,Ann@X.io,06 12 34 56 78,FR,pu-1,Ann,Lee,true,spring,signup\n"
    "L-2,yesterday,dan@x.io,+44 20 7946 0958,GB,pu-2,Dan,Ray,false,spring,signup\n"
    "L-3,2026-03-02T10:00:00Z,cy@x.io,020 7946 0958,UK,pu-3,Cy,Day,false,spring,signup\n"
)
# A table already in the warehouse, declared as an input: the user's, never written by the CDP.
CRM_LEADS = """\
input: crm_leads
description: Leads the sales team keeps in its own warehouse table.
from:
  relation: {schema: crm_ext, table: leads}
record_id: lead_key
updated_at: changed_at
identifiers:
  email: email
  phone: {column: mobile, country: country_code}
"""


@pytest.fixture
def inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "inputs"
    folder.mkdir()
    shutil.copy(EXAMPLE, folder / "lead_ads.yml")
    monkeypatch.setenv("CDP_INPUTS_DIR", str(folder))
    return folder


@pytest.fixture
def leads_landing(tmp_path: Path) -> Path:
    folder = tmp_path / "landing"
    folder.mkdir()
    (folder / "lead_ads.csv").write_text(LEADS, encoding="utf-8")
    return folder


def test_landing_sources_are_the_built_ins_and_the_declared_landing_inputs(
        inputs: Path) -> None:
    (inputs / "crm_leads.yml").write_text(CRM_LEADS)
    names = [source.name for source in landing_sources()]
    assert names == [source.name for source in SOURCES] + ["lead_ads"]  # no warehouse input
    # the Dagster asset's specs were read when the definitions loaded (no inputs then)
    assert "lead_ads" not in {source.name for source in LOADED_SOURCES}


def test_dagster_shows_an_asset_per_declared_landing_input(inputs: Path) -> None:
    """The definitions read the declarations when they load (a fresh process, as dagster's)."""
    code = ("from orchestration.ingestion.assets import RAW_SPECS\n"
            "from orchestration.sensors import RAW_KEYS\n"
            "print([s.key.to_user_string() for s in RAW_SPECS if 'lead' in s.key.path[-1]],\n"
            "      [k.to_user_string() for k in RAW_KEYS if 'lead' in k.path[-1]])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "CDP_INPUTS_DIR": str(inputs)}, timeout=300,
                            cwd=PROJECT_DIR)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["['raw/lead_ads']", "['raw/lead_ads']"]


def test_the_loader_loads_a_declared_landing_input_on_duckdb(
        inputs: Path, leads_landing: Path) -> None:
    con = duckdb.connect()
    report = load_landing(leads_landing, con)  # a rejected value does not fail the load
    assert report.sources["lead_ads"].rows_loaded == 2
    types = dict(con.execute("select column_name, data_type from information_schema.columns "
                             "where table_schema = 'raw' and table_name = 'lead_ads'").fetchall())
    assert types["created_time"] == "TIMESTAMP WITH TIME ZONE"
    assert types["form_name"] == "VARCHAR"
    assert con.execute("select lead_id from raw.lead_ads order by 1").fetchall() == [
        ("L-1",), ("L-3",)]
    rejects = con.execute("select source, _source_file, _source_line, column_name, raw_value "
                          "from raw._load_rejects").fetchall()
    assert rejects == [("lead_ads", "lead_ads.csv", 3, "created_time", "yesterday")]
    assert con.execute("select source, rows_loaded, rows_rejected from raw._load_log "
                       "where _source_file = 'lead_ads.csv'").fetchall() == [("lead_ads", 2, 1)]
    # a second load of the same file loads nothing again
    again = load_landing(leads_landing, con)
    assert again.sources["lead_ads"].rows_loaded == 0


def test_the_loader_loads_a_declared_landing_input_on_postgres(
        postgres_server, inputs: Path, leads_landing: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**postgres_server.fresh_database("inputs"), "CDP_DBT_TARGET": "postgres",
           "CDP_WAREHOUSE": str(tmp_path / "must_not_exist" / "warehouse.duckdb")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    (leads_landing / "lead_ads").mkdir()  # a folder of the input's files loads too
    (leads_landing / "lead_ads" / "more.csv").write_text(
        LEAD_HEADER + "L-9,2026-04-01T08:00:00Z,eve@x.io,,,pu-9,Eve,Oak,true,fall,signup\n")
    with closing(open_warehouse("postgres")) as wh:
        report = load_landing_into(leads_landing, wh)
        assert report.sources["lead_ads"].rows_loaded == 3
        assert wh.rows("select lead_id, _source_file from raw.lead_ads order by 1") == [
            ("L-1", "lead_ads.csv"), ("L-3", "lead_ads.csv"), ("L-9", "lead_ads/more.csv")]
        assert wh.rows("select data_type from information_schema.columns where table_schema = "
                       "'raw' and table_name = 'lead_ads' and column_name = 'created_time'"
                       ) == [("timestamp with time zone",)]
        assert wh.rows("select _source_line, column_name, raw_value from raw._load_rejects "
                       "where source = 'lead_ads'") == [(3, "created_time", "yesterday")]
        assert wh.rows("select _source_file, rows_loaded, rows_rejected from raw._load_log "
                       "where source = 'lead_ads' order by 1") == [
            ("lead_ads.csv", 2, 1), ("lead_ads/more.csv", 1, 0)]
        # the phone lookup of the target holds the input's numbers too
        assert ("06 12 34 56 78", "FR", "+33612345678") in set(wh.rows(
            "select phone_raw, country_raw, phone_e164 from raw._phone_numbers"))
    assert not (tmp_path / "must_not_exist").exists()


def test_an_invalid_declaration_is_warned_about_and_the_built_ins_still_load(
        inputs: Path, leads_landing: Path, sample_landing: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    broken = inputs / "broken.yml"
    broken.write_text(CRM_LEADS.replace("input: crm_leads", "input: broken")
                      .replace("email: email", "email: email\n  shoe_size: shoe"))
    shutil.copy(sample_landing / "crm_contacts.csv", leads_landing / "crm_contacts.csv")
    con = duckdb.connect()
    report = load_landing(leads_landing, con)
    warning = next(w for w in report.warnings if "broken.yml" in w)
    assert "identifiers.shoe_size" in warning and "unknown identifier type" in warning
    assert any("broken.yml" in r.message and r.levelname == "WARNING" for r in caplog.records)
    assert con.execute("select count(*) from raw.crm_contacts").fetchone()[0] > 0
    # the valid declaration beside the broken one still loads
    assert report.sources["lead_ads"].rows_loaded == 2


def test_declared_phones_land_in_the_lookup_in_e164(inputs: Path, leads_landing: Path) -> None:
    (inputs / "crm_leads.yml").write_text(CRM_LEADS)
    con = duckdb.connect()
    report = load_landing(leads_landing, con)  # crm_ext.leads does not exist yet: a note
    assert any("crm_ext.leads" in note for note in report.phones.notes)
    con.execute("create schema crm_ext; create table crm_ext.leads as select * from (values "
                "('k1', '2026-01-01', 'bob@x.io', '030 901820', 'DE')) "
                "as t(lead_key, changed_at, email, mobile, country_code)")
    report = load_landing(leads_landing, con)
    assert report.phones.notes == ()
    lookup = set(con.execute("select phone_raw, country_raw, phone_e164, is_valid "
                             "from raw._phone_numbers").fetchall())
    assert ("06 12 34 56 78", "FR", "+33612345678", True) in lookup  # country column FR
    assert ("020 7946 0958", "UK", "+442079460958", True) in lookup  # alias UK -> GB
    assert ("030 901820", "DE", "+4930901820", True) in lookup  # the warehouse input's
    assert not any(raw == "+44 20 7946 0958" for raw, *_ in lookup)  # a rejected row's


def test_an_erasure_deletes_the_lead_rows_and_reports_the_users_own_table(
        inputs: Path, leads_landing: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDP_PRIVACY_EXPORT_DIR", str(tmp_path / "exports"))
    (inputs / "crm_leads.yml").write_text(CRM_LEADS)
    with closing(duckdb.connect(str(tmp_path / "loaded.duckdb"))) as loaded:
        load_landing(leads_landing, loaded)  # the real loader's raw.lead_ads
    con = duckdb.connect(str(tmp_path / "small.duckdb"))
    con.execute(SMALL_WAREHOUSE_SQL)  # tests/test_privacy.py's small warehouse
    con.execute(f"attach '{tmp_path / 'loaded.duckdb'}' as loaded (read_only)")
    con.execute("create table raw.lead_ads as select * from loaded.raw.lead_ads; detach loaded")
    con.execute("create schema crm_ext; create table crm_ext.leads as select * from (values "
                "('k1', '2026-01-01', 'ann@x.io', null, null), "
                "('k2', '2026-01-01', 'bob@x.io', null, null), "
                "('k3', '2026-01-01', 'cy@x.io', null, null)) "
                "as t(lead_key, changed_at, email, mobile, country_code)")
    privacy.execute_privacy_requests(con)  # r1: erase ann@x.io, r3: erase bob, r6: access cy
    # Ann's lead (spelled Ann@X.io in raw) is gone, Cy's stays; no staging view was needed
    assert con.execute("select lead_id from raw.lead_ads order by 1").fetchall() == [("L-3",)]
    log = small_log(con)
    assert log["r1", "raw.lead_ads"] == ("delete", "finished", 1)
    # the user's own table: reported, never deleted from (not even as "derived" data)
    assert log["r1", "crm_ext.leads"][:2] == ("owned_outside_cdp", "finished")
    assert log["r3", "crm_ext.leads"][:2] == ("owned_outside_cdp", "finished")
    detail = con.execute(f"select detail from {privacy.LOG} where request_id = 'r1' "
                         "and target = 'crm_ext.leads'").fetchone()[0]
    assert "owned outside the CDP: erase there" in detail
    assert con.execute("select count(*) from crm_ext.leads").fetchone()[0] == 3
    # the access request's export holds the person's lead and their row of the user's table
    export = json.loads((tmp_path / "exports" / "r6.json").read_text())
    assert [r["lead_id"] for r in export["tables"]["raw.lead_ads"]] == ["L-3"]
    assert [r["lead_key"] for r in export["tables"]["crm_ext.leads"]] == ["k3"]
    # a late lead of Ann is dropped at load by the declared identifier columns
    con.execute("insert into raw.lead_ads (lead_id, email, _source_file, _source_line) values "
                "('L-7', ' ANN@x.io', 'late.csv', 1), ('L-8', 'zoe@x.io', 'late.csv', 2)")
    assert privacy.drop_suppressed_rows(con, "lead_ads", "late.csv") == 1
    assert con.execute("select lead_id from raw.lead_ads order by 1").fetchall() == [
        ("L-3",), ("L-8",)]
    con.close()
