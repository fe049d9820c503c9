"""The input compiler: declarations -> generated staging model, YAML and declared_inputs(), built
by real dbt on DuckDB, PostgreSQL and Spark."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from engine_support.project import project_copy as shared_project_copy
from orchestration.inputs import InputError
from orchestration.inputs import compiler
from orchestration.settings import PROJECT_DIR

EXAMPLE = PROJECT_DIR / "examples" / "inputs" / "lead_ads.yml"
COPIED = ("models", "macros", "seeds", "data-tests", "profiles", "dbt_project.yml")
RELATION_INPUT: dict[str, Any] = {
    "input": "partner_contacts",
    "description": "Contacts a partner shares in its own schema of our warehouse.",
    "from": {"relation": {"schema": "partner", "table": "contacts"}},
    "record_id": "partner_id",
    "updated_at": "modified_at",
    "identifiers": {
        "email": "email_address",
        "partner_ref": {"column": "ref", "normalise": "regex", "pattern": "^P[0-9]+$",
                        "new_type": {"priority": 9}},
        "partner_mobile": {"column": "mobile", "normalise": "phone", "new_type": {"priority": 10}},
    },
    "attributes": {"country_code": "country", "city": "town"},
}


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def project_copy(root: Path) -> Path:
    """The dbt project in a temp folder: generated files are written there, never here."""
    return shared_project_copy(root, COPIED, manifest=False)


def test_the_repository_declares_no_input_and_its_generated_files_are_current() -> None:
    outputs = compiler.compile_inputs(write=False)
    assert compiler.out_of_date(outputs) == [], "run python -m orchestration.inputs compile"
    macro = (PROJECT_DIR / compiler.MACRO_FILE).read_text()
    assert "return([])" in macro and compiler.GENERATED_MARKER in macro.splitlines()[0]
    root = PROJECT_DIR / compiler.MODELS_SUBDIR
    assert not root.exists() or not any(root.iterdir())


def test_check_command_fails_on_stale_generated_files(tmp_path: Path) -> None:
    env = {**os.environ, "CDP_INPUTS_DIR": str(tmp_path)}
    shutil.copy(EXAMPLE, tmp_path / "lead_ads.yml")
    result = subprocess.run([sys.executable, "-m", "orchestration.inputs", "check"],
                            cwd=PROJECT_DIR, env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert "out of date" in result.stderr and "stg_input__lead_ads.sql" in result.stderr
    env["CDP_INPUTS_DIR"] = str(tmp_path / "none")
    result = subprocess.run([sys.executable, "-m", "orchestration.inputs", "check"],
                            cwd=PROJECT_DIR, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "0 inputs OK" in result.stdout


@pytest.mark.parametrize("change, expected", [
    ({"identifiers": {"fax": "fax_number"}}, "identifiers.fax: unknown identifier type 'fax'"),
    ({"attributes": {"shoe_size": "size"}}, "attributes.shoe_size: unknown attribute"),
    ({"consents": {"telepathy": "opt"}}, "consents.telepathy: unknown purpose"),
    ({"from": {"landing": "lead_ads", "relation": {"schema": "x", "table": "y"}}},
     "from: give exactly one of landing"),
    ({"record_id": None}, "record_id:"),
    ({"identifiers": {"email": {"column": "email", "normalise": "regex"}}},
     "identifiers.email.pattern: normalise: regex needs a pattern"),
    ({"description": "{{ env_var('SECRET') }}"}, "description: contains template syntax"),
    # the models add inputs as CTEs: a name they already use would collide
    ({"input": "events", "from": {"landing": "events_export"}},
     "input: 'events' is a name the models already use"),
    ({"input": "crm_contacts"}, "input: 'crm_contacts' is a built-in landing source"),
])
def test_a_bad_file_names_the_file_and_the_field(tmp_path: Path, change: dict[str, Any],
                                                 expected: str) -> None:
    data = {**yaml.safe_load(EXAMPLE.read_text()), **change}
    path = write_yaml(tmp_path / "bad.yml", data)
    with pytest.raises(InputError) as error:
        compiler.compile_inputs(write=False, paths=[path], project_dir=tmp_path)
    assert f"{path}: {expected}" in str(error.value)


def test_compile_with_a_bad_file_keeps_the_last_good_generated_files(tmp_path: Path) -> None:
    good = shutil.copy(EXAMPLE, tmp_path / "lead_ads.yml")
    relation = write_yaml(tmp_path / "partner_contacts.yml", RELATION_INPUT)
    outputs = compiler.compile_inputs(paths=[Path(good), relation], project_dir=tmp_path)
    written = {path: path.read_text() for path in outputs}
    folder = tmp_path / compiler.MODELS_SUBDIR
    assert sorted(p.name for p in folder.iterdir()) == ["lead_ads", "partner_contacts"]
    assert '"source": "lead_ads"' in written[tmp_path / compiler.MACRO_FILE]

    bad = write_yaml(tmp_path / "partner_contacts.yml",
                     {**RELATION_INPUT, "attributes": {"shoe_size": "size"}})
    with pytest.raises(InputError, match="partner_contacts.yml: attributes.shoe_size"):
        compiler.compile_inputs(paths=[Path(good), bad], project_dir=tmp_path)
    assert {path: path.read_text() for path in outputs} == written

    # an input no longer declared loses its generated folder; a user's folder stays
    own = folder / "hand_written"
    own.mkdir()
    (own / "stg_mine.sql").write_text("select 1 as one\n")
    compiler.compile_inputs(paths=[Path(good)], project_dir=tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["hand_written", "lead_ads"]
    assert '"partner_contacts"' not in (tmp_path / compiler.MACRO_FILE).read_text()


def test_prepare_step_returns_the_problem_and_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = {p: p.read_text() for p in compiler.compile_inputs(write=False)}
    write_yaml(tmp_path / "leads.yml", {**yaml.safe_load(EXAMPLE.read_text()),
                                        "consents": {"telepathy": "opt"}})
    monkeypatch.setenv("CDP_INPUTS_DIR", str(tmp_path))
    problem = compiler.compile_for_run()
    assert problem and f"{tmp_path / 'leads.yml'}: consents.telepathy" in problem
    assert compiler.declaration_problem() == problem
    assert {p: p.read_text() for p in before} == before
    assert not (PROJECT_DIR / compiler.MODELS_SUBDIR / "lead_ads").exists()


def test_a_dbt_source_input_leaves_the_sources_yaml_to_the_user(tmp_path: Path) -> None:
    data = {**RELATION_INPUT, "from": {"dbt_source": {"source": "erp", "table": "people"}}}
    outputs = compiler.compile_inputs(paths=[write_yaml(tmp_path / "p.yml", data)],
                                      project_dir=tmp_path)
    names = sorted(p.name for p in outputs)
    assert names == ["_partner_contacts__models.yml", "declared_inputs.sql",
                     "stg_input__partner_contacts.sql"]
    sql = next(text for p, text in outputs.items() if p.suffix == ".sql" and "stg_" in p.name)
    assert "source('erp', 'people')" in sql and "_loaded_at" not in sql


def test_generated_yaml_documents_every_column_and_marks_pii(tmp_path: Path) -> None:
    outputs = compiler.compile_inputs(paths=[Path(EXAMPLE)], project_dir=tmp_path)
    folder = tmp_path / compiler.MODELS_SUBDIR / "lead_ads"
    models = yaml.safe_load(outputs[folder / "_lead_ads__models.yml"])["models"][0]
    columns = {c["name"]: c for c in models["columns"]}
    assert list(columns) == [c.name for c in compiler.staging_columns(
        compiler.load_inputs([EXAMPLE])[0].declaration)]
    assert all(c["description"] for c in columns.values())
    assert columns["record_id"]["data_tests"] == ["unique", "not_null"]
    pii = {name for name, c in columns.items() if c.get("config", {}).get("meta", {}).get("pii")}
    assert pii == {"email", "email_original", "phone", "lead_platform_user_id", "first_name",
                   "last_name"}
    sources = yaml.safe_load(outputs[folder / "_lead_ads__sources.yml"])["sources"][0]
    assert sources["schema"] == "raw" and sources["tables"][0]["name"] == "lead_ads"
    for path, text in outputs.items():
        assert compiler.GENERATED_MARKER in text.splitlines()[0], path


LEADS = [  # lead_id, created_time, email, phone, country, platform_user_id, consent, line
    ("L1", "2026-05-01 10:00:00+00", "old@example.com", "+1 415 555 0134", "US", "u1", "no", 1),
    ("L1", "2026-05-03 09:00:00+00", "John.Doe+ads@googlemail.com", "+1 415 555 0134", "US",
     "u1", "yes", 2),
    ("L2", "2026-05-02 12:00:00+00", " JohnDoe@Gmail.com ", "call me", "US", "n/a", "no", 3),
    ("L3", "2026-07-15 08:00:00+00", "late@example.com", None, None, "u3", "yes", 4),
    (None, "2026-05-04 08:00:00+00", "noid@example.com", None, None, "u4", "yes", 5),
    ("L4", "2026-05-05 08:00:00+00", "ana@example.com", None, "US", "u5", "maybe", 6),
]
PARTNERS = [  # partner_id, modified_at, email_address, ref, country, town, mobile
    (1, "2026-04-01 00:00:00+00", "Ana@Partner-Mail.net", "P123", " Germany", "  berlin ",
     "+1 415 555 0134"),
    (2, "2026-04-02 00:00:00+00", "bo@example.com", "X9", "fr", "paris", "garbage"),
]


SEED_TABLES = [
    """create table raw.lead_ads (lead_id varchar, created_time timestamptz, email varchar,
        phone_number varchar, country varchar, platform_user_id varchar,
        marketing_opt_in varchar, _source_line integer, first_name varchar, last_name varchar,
        campaign_name varchar, form_name varchar, _source_file varchar, _loaded_at timestamptz)""",
    # the lookup the phone step fills (orchestration/phones.py)
    """create table raw._phone_numbers (phone_raw varchar, country_raw varchar, region varchar,
        phone_e164 varchar, is_valid boolean, reason varchar, parsed_at timestamptz)""",
    """create table partner.contacts (partner_id integer, modified_at timestamptz,
        email_address varchar, ref varchar, country varchar, town varchar, mobile varchar)""",
]
LEAD_INSERT = ("insert into raw.lead_ads values (%s, %s, %s, %s, %s, %s, %s, %s, '  john ', "
               "'DOE', 'spring', 'form a', 'lead_ads.csv', '2026-05-06 00:00:00+00')")


def seed_warehouse(execute: Any, placeholder: str = "%s") -> None:
    """The raw tables of both inputs, through a DB-API `execute(sql, params)`."""
    for schema in ("raw", "partner"):
        execute(f"create schema {schema}", [])
    for statement in SEED_TABLES:
        execute(statement, [])
    for row in LEADS:
        execute(LEAD_INSERT.replace("%s", placeholder), list(row))
    execute("insert into raw._phone_numbers values ('+1 415 555 0134', 'US', 'US', "
            "'+14155550134', true, null, now()), ('+1 415 555 0134', '', 'US', "
            "'+14155550134', true, null, now())", [])  # one number the library parsed
    for row in PARTNERS:
        execute("insert into partner.contacts values (%s, %s, %s, %s, %s, %s, %s)".replace(
            "%s", placeholder), list(row))


def run_dbt(copy: Path, target: str, target_env: dict[str, str], *args: str) -> None:
    """One dbt command in the project copy against `target`; it must succeed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDP_")}
    env.update({**target_env, "CDP_DBT_TARGET": target, "CDP_AS_OF": "2026-06-30"})
    dbt = Path(sys.executable).with_name("dbt")
    result = subprocess.run(
        [str(dbt), *args, "--project-dir", str(copy), "--profiles-dir", str(copy / "profiles"),
         "--target", target],
        cwd=copy, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def compile_and_build(root: Path, target: str, target_env: dict[str, str]) -> Path:
    """Both example inputs compiled into a project copy and built there by dbt; the copy."""
    copy = project_copy(root)
    declarations = [Path(shutil.copy(EXAMPLE, root / "lead_ads.yml")),
                    write_yaml(root / "partner_contacts.yml", RELATION_INPUT)]
    compiler.compile_inputs(paths=declarations, project_dir=copy)
    run_dbt(copy, target, target_env, "build", "--select", "stg_input__lead_ads",
            "stg_input__partner_contacts")
    return copy


def staged_rows(cursor: Any, schema: str) -> dict[str, list[dict[str, Any]]]:
    rows = {}
    for model in ("stg_input__lead_ads", "stg_input__partner_contacts"):
        cursor.execute(f"select * from {schema}.{model} order by record_id")
        names = [d[0] for d in cursor.description]
        rows[model] = [dict(zip(names, row)) for row in cursor.fetchall()]
    return rows


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("inputs_dbt")
    warehouse = root / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        seed_warehouse(con.execute, "?")
    copy = compile_and_build(root, "duckdb", {"CDP_WAREHOUSE": str(warehouse)})
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows: dict[str, Any] = staged_rows(con.cursor(), "main_staging")
    rows["manifest"] = json.loads((copy / "target" / "manifest.json").read_text())
    rows["copy"] = copy
    return rows


def assert_lead_ads_staged(staged: list[dict[str, Any]]) -> None:
    rows = {row["record_id"]: row for row in staged}
    assert sorted(rows) == ["L1", "L2", "L4"]  # L3 is past the as-of date, the id-less row gone
    l1, l2, l4 = rows["L1"], rows["L2"], rows["L4"]
    assert l1["occurred_at"].isoformat() == "2026-05-03T09:00:00"  # the latest version
    assert l1["email"] == l2["email"] == "johndoe@gmail.com"  # two spellings, one mailbox
    assert l1["email_original"] == "john.doe+ads@googlemail.com"
    assert l1["phone"] == "+14155550134" and l2["phone"] is None  # junk phone: NULL
    assert l1["lead_platform_user_id"] == "u1" and l2["lead_platform_user_id"] is None
    assert (l1["consent_email_marketing"], l2["consent_email_marketing"],
            l4["consent_email_marketing"]) == (True, False, None)
    assert l1["first_name"] == "John" and l1["last_name"] == "Doe"
    assert (l1["event_type"], l1["channel"]) == ("lead_submitted", "social")
    assert l1["campaign_name"] == "spring"
    assert l1["loaded_at"].isoformat() == "2026-05-06T00:00:00"


@pytest.mark.slow
def test_generated_lead_ads_staging_dedups_normalises_and_filters(built: dict) -> None:
    assert_lead_ads_staged(built["stg_input__lead_ads"])


@pytest.mark.slow
def test_a_relation_input_builds_from_another_schema(built: dict) -> None:
    rows = {row["record_id"]: row for row in built["stg_input__partner_contacts"]}
    assert sorted(rows) == ["1", "2"]
    assert rows["1"]["email"] == "ana@partner-mail.net"
    assert (rows["1"]["partner_ref"], rows["2"]["partner_ref"]) == ("P123", None)  # regex
    assert (rows["1"]["country_code"], rows["2"]["country_code"]) == ("DE", "FR")
    assert rows["1"]["city"] == "Berlin"
    assert (rows["1"]["partner_mobile"], rows["2"]["partner_mobile"]) == ("+14155550134", None)
    assert rows["1"]["loaded_at"] == rows["1"]["occurred_at"]
    assert "event_type" not in rows["1"]


@pytest.mark.slow
def test_dagster_keys_a_landing_input_raw_and_a_relation_input_external(built: dict) -> None:
    from orchestration.dbt_assets import CdpTranslator

    translator = CdpTranslator()
    sources = {(props["source_name"], props["name"]): props
               for props in built["manifest"]["sources"].values()}
    landing = sources["input_lead_ads", "lead_ads"]
    relation = sources["input_partner_contacts", "contacts"]
    assert translator.get_asset_key(landing).path == ["raw", "lead_ads"]
    assert translator.get_asset_key(relation).path == ["input", "partner_contacts"]
    assert translator.get_group_name(relation) == translator.get_group_name(landing) == "ingestion"
    crm = sources["crm", "crm_contacts"]
    assert translator.get_asset_key(crm).path == ["raw", "crm_contacts"]
    assert translator.get_group_name(crm) == "ingestion"


@pytest.mark.slow
def test_generated_sql_passes_sqlfluff(built: dict) -> None:
    copy = built["copy"]
    shutil.copy(PROJECT_DIR / ".sqlfluff", copy / ".sqlfluff")
    sqlfluff = Path(sys.executable).with_name("sqlfluff")
    result = subprocess.run([str(sqlfluff), "lint", "models/staging/inputs", "--nocolor",
                             "--disable-progress-bar"], cwd=copy, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


@pytest.mark.slow
def test_both_inputs_build_the_same_on_postgresql(postgres_server: Any, tmp_path: Path) -> None:
    import psycopg2

    pg_env = postgres_server.fresh_database("inputs")
    connection = psycopg2.connect(host=pg_env["CDP_PG_HOST"], port=pg_env["CDP_PG_PORT"],
                                  user="postgres", dbname=pg_env["CDP_PG_DATABASE"])
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            seed_warehouse(cursor.execute)
        compile_and_build(tmp_path, "postgres", pg_env)
        with connection.cursor() as cursor:
            rows = staged_rows(cursor, "public_staging")
    finally:
        connection.close()
    assert_lead_ads_staged(rows["stg_input__lead_ads"])
    partners = {row["record_id"]: row for row in rows["stg_input__partner_contacts"]}
    assert (partners["1"]["partner_ref"], partners["2"]["partner_ref"]) == ("P123", None)
    assert partners["1"]["email"] == "ana@partner-mail.net"


@pytest.mark.slow
def test_cdp_prepare_warns_loudly_on_a_bad_declaration_and_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from orchestration.dbt_project import prepare_project

    write_yaml(tmp_path / "leads.yml", {**yaml.safe_load(EXAMPLE.read_text()),
                                        "attributes": {"shoe_size": "size"}})
    monkeypatch.setenv("CDP_INPUTS_DIR", str(tmp_path))
    macro = (PROJECT_DIR / compiler.MACRO_FILE).read_text()
    with pytest.warns(UserWarning, match="input declarations NOT compiled"):
        assert prepare_project() is None  # dbt parsed: the run goes on
    assert f"{tmp_path / 'leads.yml'}: attributes.shoe_size" in capsys.readouterr().err
    assert (PROJECT_DIR / compiler.MACRO_FILE).read_text() == macro


def test_every_example_and_preset_validates_and_compiles(tmp_path: Path) -> None:
    """The YAML under examples/ (lead ads, app installs, CDNOW, the Segment and RudderStack
    warehouse presets) is valid together and compiles to one staging model per input."""
    paths = sorted((PROJECT_DIR / "examples").rglob("*.yml"))
    rs = [p for p in paths if "rudderstack" in str(p)]
    others = [p for p in paths if p not in rs]
    for group in (others, rs):  # Segment or RudderStack: one set of web tables, not both
        outputs = compiler.compile_inputs(write=False, paths=group, project_dir=tmp_path)
        models = sorted(p.name for p in outputs if p.name.startswith("stg_input__"))
        names = sorted(f"stg_input__{yaml.safe_load(p.read_text())['input']}.sql" for p in group)
        assert models == names and len(models) >= 3


def spark_ddl(statement: str) -> str:
    """A seed table's DDL in Spark's types (no varchar without a length, no timestamptz)."""
    return statement.replace("timestamptz", "timestamp").replace("varchar", "string")


@pytest.mark.slow
def test_both_inputs_build_the_same_on_spark(spark_thrift_server: Any, tmp_path: Path) -> None:
    from pyhive import hive

    spark_thrift_server.drop_all_schemas()  # the session's server: other tests' tables go
    settings = spark_thrift_server.settings
    connection = hive.connect(host=settings.connect_host, port=settings.port,
                              username=settings.user)
    try:
        cursor = connection.cursor()
        cursor.execute("set spark.sql.session.timeZone=UTC")  # as the dbt profile's session
        cursor.execute("set spark.sql.storeAssignmentPolicy=LEGACY")  # text into timestamp
        seed_warehouse(lambda sql, params: cursor.execute(spark_ddl(sql), params or None))
        copy = compile_and_build(tmp_path, "spark", spark_thrift_server.env)
        rows = staged_rows(cursor, "cdp_staging")
    finally:
        connection.close()
    assert_models_over_declared_inputs_compile_on_spark(copy, spark_thrift_server.env)
    assert_lead_ads_staged(rows["stg_input__lead_ads"])
    partners = {row["record_id"]: row for row in rows["stg_input__partner_contacts"]}
    assert sorted(partners) == ["1", "2"]
    assert (partners["1"]["partner_ref"], partners["2"]["partner_ref"]) == ("P123", None)
    assert partners["1"]["email"] == "ana@partner-mail.net"
    assert (partners["1"]["country_code"], partners["2"]["country_code"]) == ("DE", "FR")
    assert partners["1"]["city"] == "Berlin"
    assert (partners["1"]["partner_mobile"], partners["2"]["partner_mobile"]) == (
        "+14155550134", None)


READERS = {  # the models that read declared_inputs(): the inputs each must take in
    "int_identity_identifiers_observed": ("stg_input__lead_ads", "stg_input__partner_contacts"),
    "customer_events": ("stg_input__lead_ads",),
    "int_consent_decisions_collected": ("stg_input__lead_ads",),
    "int_transactions_identified": ("stg_input__lead_ads",),
}


def assert_models_over_declared_inputs_compile_on_spark(copy: Path, env: dict[str, str]) -> None:
    """dbt compiles (no build: the whole graph is too slow) the models that read
    declared_inputs() for Spark, with the two inputs plus a purchase input over the lead model."""
    entries = [loaded.declaration.dbt_entry() for loaded in compiler.load_inputs(
        [copy.parent / "lead_ads.yml", copy.parent / "partner_contacts.yml"])]
    orders = json.loads(json.dumps(entries[0]))
    orders.update({"source": "lead_orders", "consents": {}, "identifier_types": {}})
    orders["events"].update({"revenue": "revenue", "purchase": "online"})
    rendered = json.dumps([*entries, orders]).replace("null", "none")
    (copy / compiler.MACRO_FILE).write_text(
        "{% macro declared_inputs() -%}\n    {{ return(" + rendered + ") }}\n{%- endmacro %}\n")
    run_dbt(copy, "spark", env, "compile", "--select", *READERS)
    compiled = {path.stem: path.read_text()
                for path in (copy / "target" / "compiled").rglob("*.sql")}
    for model, inputs in READERS.items():
        for name in inputs:
            assert f"cdp_staging.{name}" in compiled[model], (model, name)
    assert "lead_orders" in compiled["int_transactions_identified"]
