"""Segment and sync declarations are data: hostile values never become Jinja or SQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
import yaml

from orchestration import segments as seg
from orchestration.activation.assets import build_sync_assets
from orchestration.activation.config import ConfigError, parse_config
from orchestration.activation.engine import run_sync
from orchestration.declarations import sql_literal
from orchestration.warehouse import WarehouseResource
from activation_support.warehouse import customers_warehouse

COLUMNS = {"orders_total": "number", "loyalty_tier": "text"}
PURPOSES = {"email_marketing"}
SECRET_READ = '{{ env_var("CDP_PG_PASSWORD") }}'
QUOTE_BREAK = "gold' or 1=1 or 'a'='a"
HOSTILE_SEGMENT_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("owner", {"owner": f"team:{SECRET_READ}"}, "owner: contains template syntax '{{'"),
    ("description", {"description": "{% do run_query('drop table x') %}"},
     "description: contains template syntax '{%'"),
    ("description", {"description": "a {# hidden #} b"}, "description: contains template syntax"),
    ("name", {"name": "{{ x }}"}, "name: contains template syntax"),
    ("consent_purpose", {"consent_purpose": "{{ 1 }}"}, "consent_purpose: contains template"),
    ("condition value", {"condition": {"column": "loyalty_tier", "op": "eq",
                                       "value": '{{ "\\x27" }}'}},
     "condition.value: contains template syntax"),
    ("condition list", {"condition": {"column": "loyalty_tier", "op": "in",
                                      "value": ["gold", "{{ run_query('select 1') }}"]}},
     "condition.value[1]: contains template syntax"),
    ("condition column", {"condition": {"column": "{{ 1 }}", "op": "is_null"}},
     "condition.column: contains template syntax"),
    ("backslash", {"condition": {"column": "loyalty_tier", "op": "eq", "value": "gold\\"}},
     "the value contains a backslash"),
    ("non-finite number", {"condition": {"column": "orders_total", "op": "gt",
                                         "value": float("nan")}}, "is not a finite number"),
    ("owner control character", {"owner": "team:a\u0000b"}, "owner: contains a control"),
]


def segment(**overrides: Any) -> dict[str, Any]:
    base = {"name": "gold", "description": "Gold members.", "owner": "team:crm",
            "condition": {"column": "loyalty_tier", "op": "eq", "value": "gold"}}
    base.update(overrides)
    return base


def write_segments(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"segments": entries}, sort_keys=False))
    return path


@pytest.mark.parametrize(("label", "override", "expected"), HOSTILE_SEGMENT_FIELDS,
                         ids=[case[0] for case in HOSTILE_SEGMENT_FIELDS])
def test_a_hostile_segment_field_is_refused_naming_file_segment_and_field(
        tmp_path: Path, label: str, override: dict[str, Any], expected: str) -> None:
    path = write_segments(tmp_path / "hostile.yml", [segment(name="fine"), segment(**override)])
    with pytest.raises(seg.SegmentError) as error:
        seg.load_segments([path], columns=COLUMNS, purposes=PURPOSES)
    message = str(error.value)
    assert f"{path}: segments[1]" in message and expected in message, message
    assert "segments[0]" not in message  # the good segment is not blamed


def test_a_quote_in_a_condition_value_stays_inside_the_literal(tmp_path: Path) -> None:
    path = write_segments(tmp_path / "quotes.yml", [segment(condition={
        "any": [{"column": "loyalty_tier", "op": "eq", "value": QUOTE_BREAK},
                {"column": "loyalty_tier", "op": "in", "value": ["it's", "x' or 'y"]}]})])
    loaded = seg.load_segments([path], columns=COLUMNS, purposes=PURPOSES)
    where = seg.compile_condition(loaded[0].segment.condition, COLUMNS)
    con = duckdb.connect()
    con.execute("create table inputs as select * from (values ('gold'), ('silver'), (?), "
                "('it''s'), ('y')) as t(loyalty_tier)", [QUOTE_BREAK])
    matched = con.execute(f"select loyalty_tier from inputs where {where} order by 1").fetchall()
    assert matched == [(QUOTE_BREAK,), ("it's",)]  # not every row, as `or 1=1` would give
    definitions = seg.render_definitions_model(loaded, COLUMNS)
    # the only Jinja in the generated model is the generator's own
    assert definitions.count("{{") == definitions.count("{{ dbt.type_string() }}")
    assert "{%" not in definitions and "{#" not in definitions


@pytest.mark.parametrize("value", [SECRET_READ, "a\\", "x\ny", float("inf"), object()])
def test_the_literal_writer_refuses_what_it_cannot_escape(value: Any) -> None:
    with pytest.raises(ValueError):
        sql_literal(value)


def sync_entry(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "crm", "source": "main_marts.customers", "primary_key": "customer_id",
        "fields": {"customer_id": "customer_id", "city": "city"},
        "destination": {"type": "http", "url": "http://127.0.0.1:9/hook"}}
    base.update(overrides)
    return base


@pytest.mark.parametrize(("override", "field"), [
    ({"description": SECRET_READ}, "syncs[0].description"),
    ({"destination": {"type": "http", "url": "http://127.0.0.1:9/{{ 1 }}"}},
     "syncs[0].destination.url"),
    ({"destination": {"type": "http", "url": "http://127.0.0.1:9/h",
                      "headers": {"X-Team": "{% raw %}"}}}, "syncs[0].destination.headers.X-Team"),
    ({"fields": {"customer_id": "customer_id", "note": {"constant": "{# x #}"}}},
     "syncs[0].fields.note.constant"),
    ({"filter": "city = '{{ 1 }}'"}, "syncs[0].filter"),
])
def test_a_hostile_sync_field_is_refused_naming_the_field(override: dict[str, Any],
                                                           field: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config({"syncs": [sync_entry(**override)]}, "syncs.yml")
    assert f"syncs.yml: {field}: contains template syntax" in str(error.value), str(error.value)


@pytest.mark.parametrize("text", [
    "true); create table pwned as select 1; select (1",
    "true) or (1=1",
    "city = 'x' -- and the rest",
    "city = 'x' /* comment */",
    "city = 'open",
    "1=1; drop table main_marts.customers",
])
def test_a_filter_must_be_one_expression(text: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config({"syncs": [sync_entry(filter=text)]}, "syncs.yml")
    assert "syncs.yml: syncs[0] (crm).filter" in str(error.value), str(error.value)


def test_an_env_reference_in_a_filter_becomes_a_typed_literal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hostile = "City1') or true; create table main_marts.pwned as select 1; select ('"
    monkeypatch.setenv("CDP_TEST_CITY", hostile)
    monkeypatch.setenv("CDP_TEST_LIMIT", "10")
    cfg = parse_config({"syncs": [sync_entry(
        filter="city = ${CDP_TEST_CITY} or lifetime_value < ${CDP_TEST_LIMIT}")]}, "syncs.yml")
    assert cfg.syncs[0].filter == ("city = " + "'" + hostile.replace("'", "''") + "'"
                                   " or lifetime_value < 10")
    with customers_warehouse(tmp_path, 25) as con:
        con.execute("update main_marts.customers set city = ? where customer_id = 'c000020'",
                    [hostile])
        result = run_sync(con, cfg, "crm", dry_run=True)
        assert result.status == "dry_run"
        tables = {r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'main_marts'"
        ).fetchall()}
        assert "pwned" not in tables
        # lifetime_value = 1.5 * i < 10 for c000000..c000006, plus the one literal match
        assert result.counts.added == 8


def test_an_unset_env_reference_in_a_filter_is_an_error_not_an_empty_sql_fragment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CDP_TEST_UNSET", raising=False)
    with pytest.raises(ConfigError, match=r"syncs\[0\] \(crm\)\.filter: \$\{CDP_TEST_UNSET\} "
                                          "is not set"):
        parse_config({"syncs": [sync_entry(filter="city = ${CDP_TEST_UNSET}")]}, "syncs.yml")
    monkeypatch.setenv("CDP_TEST_UNSET", "a\\b")
    with pytest.raises(ConfigError, match="backslash"):
        parse_config({"syncs": [sync_entry(filter="city = ${CDP_TEST_UNSET}")]}, "syncs.yml")


def test_a_hostile_sync_fails_only_its_own_asset(tmp_path: Path) -> None:
    path = tmp_path / "syncs.yml"
    path.write_text(yaml.safe_dump({"syncs": [
        sync_entry(name="good"),
        sync_entry(name="evil", description=SECRET_READ),
        sync_entry(name="{{ x }}"),
    ]}, sort_keys=False))
    built = build_sync_assets(path)
    keys = {key.to_user_string() for a in built if isinstance(a, dg.AssetsDefinition)
            for key in a.keys}
    assert keys == {"activation/good", "activation/evil", "activation/invalid_sync_2"}
    dg.Definitions(assets=built, resources={"warehouse": WarehouseResource(
        path=str(tmp_path / "w.duckdb"))}).get_repository_def()  # the code location loads
    evil = next(a for a in built if isinstance(a, dg.AssetsDefinition)
                and dg.AssetKey(["activation", "evil"]) in a.keys)
    result = dg.materialize([evil], raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    text = failure.step_failure_data.user_failure_data.description
    assert f"{path}: syncs[1].description: contains template syntax" in text, text
