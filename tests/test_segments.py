"""Segment declarations: validation errors that name file and segment, and compilation to SQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from engine_support.project import project_copy
from orchestration import segments as seg

COLUMNS = {"orders_total": "number", "loyalty_tier": "text", "last_cart_added_at": "timestamp",
           "is_email_unsubscribed": "boolean"}
PURPOSES = {"email_marketing", "analytics"}


def write(path: Path, entries: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"segments": entries}, sort_keys=False))
    return path


def segment(**overrides: object) -> dict:
    base = {"name": "buyers", "description": "Bought.", "owner": "team:crm",
            "condition": {"column": "orders_total", "op": "gte", "value": 1}}
    base.update(overrides)
    return base


def load(*paths: Path) -> list[seg.LoadedSegment]:
    return seg.load_segments(paths, columns=COLUMNS, purposes=PURPOSES)


def test_default_segments_are_valid_and_the_generated_models_are_current() -> None:
    loaded = seg.load_segments()
    names = {item.segment.name for item in loaded}
    assert {"high_value", "at_risk_valuable", "cart_abandoners", "new_customers", "lapsed",
            "email_engaged", "loyalty_vips", "rfm_champions", "rfm_loyal", "rfm_potential",
            "rfm_at_risk", "rfm_hibernating"} <= names
    for path, text in seg.compile_segments(write=False).items():
        assert path.read_text() == text, f"{path} is stale: run python -m orchestration.segments compile"


def test_bad_file_names_the_file_the_segment_and_the_problem(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yml", [
        segment(),
        segment(name="vip", condition={"column": "loyalty_teir", "op": "eq", "value": "gold"}),
        segment(name="weird", condition={"column": "orders_total", "op": "like", "value": 1}),
        segment(name="typed", condition={"all": [
            {"column": "orders_total", "op": "gt", "value": "many"},
            {"column": "loyalty_tier", "op": "gt", "value": "gold"},
            {"column": "last_cart_added_at", "op": "within_last_days", "value": -1}]}),
        segment(name="consented", consent_purpose="telepathy"),
        segment(name="buyers"),
    ])
    with pytest.raises(seg.SegmentError) as error:
        load(path)
    message = str(error.value)
    assert f"{path}: segments[1] (vip).condition[loyalty_teir]: unknown column 'loyalty_teir'" in message
    assert f"{path}: segments[2] (weird).condition.op: unknown operator 'like'" in message
    assert f"{path}: segments[3] (typed).condition[orders_total]: 'many' is not a number" in message
    assert "segments[3] (typed).condition[loyalty_tier]: operator 'gt' does not apply to a text" in message
    assert "(typed).condition[last_cart_added_at]: operator 'within_last_days' needs a whole" in message
    assert f"{path}: segments[4] (consented).consent_purpose: unknown purpose 'telepathy'" in message
    assert f"segments[5] (buyers).name: segment 'buyers' is already declared in {path}" in message
    assert "segments[0]" not in message


def test_structural_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "s.yml", [segment(name="Bad Name", colour="red")])
    with pytest.raises(seg.SegmentError) as error:
        load(path)
    assert f"{path}: segments[0] (Bad Name).name: String should match pattern" in str(error.value)
    assert f"{path}: segments[0] (Bad Name).colour: Extra inputs are not permitted" in str(error.value)
    missing = tmp_path / "none.yml"
    missing.write_text("just: text\n")
    with pytest.raises(seg.SegmentError, match="expected a mapping with a `segments:` list"):
        load(missing)


def test_conditions_compile_to_portable_sql() -> None:
    condition, errors = seg.parse_condition({"all": [
        {"column": "loyalty_tier", "op": "in", "value": ["gold", "o'neil"]},
        {"not": {"column": "is_email_unsubscribed", "op": "is_true"}},
        {"any": [{"column": "orders_total", "op": ">=", "value": 2},
                 {"column": "last_cart_added_at", "op": "within_last_days", "value": 1}]},
    ]})
    assert errors == []
    sql = seg.compile_condition(condition, COLUMNS)
    assert sql == (
        "(inputs.loyalty_tier in ('gold', 'o''neil') and "
        "not coalesce(inputs.is_email_unsubscribed = true, false) and "
        "(inputs.orders_total >= 2 or inputs.last_cart_added_at >= "
        "{{ dbt.dateadd('day', -1, as_of_timestamp()) }}))")


def test_compiled_model_gates_on_consent(tmp_path: Path) -> None:
    path = write(tmp_path / "s.yml", [segment(consent_purpose="email_marketing")])
    sql = seg.render_members_model(load(path), COLUMNS)
    assert "consents.purpose = 'email_marketing'" in sql and "consents.is_granted" in sql
    assert "inputs.orders_total >= 1" in sql and sql.rstrip().endswith("select * from final")


# --- A run compiles the YAML before dbt builds; a bad YAML fails only the segment check -------

RUN_IN_COPY = textwrap.dedent("""
    import json, os, warnings
    import dagster as dg, duckdb
    import orchestration
    from orchestration import definitions

    from orchestration.dbt_assets import cdp_dbt_models, dbt_resource, segment_declarations_valid

    def run():
        # the code location's own dbt asset and segment check, as a run of them executes them
        selection = (dg.AssetSelection.assets(dg.AssetKey(["int_segment_definitions"]))
                     | dg.AssetSelection.checks(segment_declarations_valid))
        result = dg.materialize([cdp_dbt_models, segment_declarations_valid], selection=selection,
                                resources={"dbt": dbt_resource()}, raise_on_error=False,
                                instance=dg.DagsterInstance.ephemeral())
        checks = [(c.passed, c.description or "") for c in result.get_asset_check_evaluations()
                  if c.check_name == "segment_declarations_valid"]
        con = duckdb.connect(os.environ["CDP_WAREHOUSE"], read_only=True)
        schema = con.execute("select table_schema from information_schema.tables "
                             "where table_name = 'int_segment_definitions'").fetchone()[0]
        names = sorted(r[0] for r in con.execute(
            f"select segment_name from {schema}.int_segment_definitions").fetchall())
        con.close()
        return {"success": result.success, "checks": checks, "names": names}

    from orchestration.cli import prepare
    assert prepare() == 0  # what `cdp run` does first: its parse serves both runs below
    with open("segments/zz_new.yml", "w") as f:
        f.write(os.environ["NEW_SEGMENT_YAML"])
    first = run()
    with open("segments/zz_broken.yml", "w") as f:
        f.write("segments:\\n  - name: broken_one\\n    owner: x\\n    description: y\\n"
                "    condition: {column: no_such_column, op: eq, value: 1}\\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        broken_defs = definitions.build_definitions()
    warned = [str(w.message) for w in caught if "segment declarations" in str(w.message)]
    second = run()
    assert broken_defs.resolve_asset_graph().get_all_asset_keys()  # the code location loads
    print(json.dumps({"module": orchestration.__file__, "first": first, "second": second,
                      "warned": warned}))
""")


@pytest.mark.slow
def test_a_run_picks_up_a_new_segment_yaml_and_a_bad_one_fails_only_its_check(
        tmp_path: Path) -> None:
    copy = project_copy(tmp_path)
    new_segment = yaml.safe_dump({"segments": [{
        "name": "picked_up_in_run", "description": "Added without compiling.",
        "owner": "team:crm", "condition": {"column": "clv_decile", "op": "eq", "value": 10}}]})
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDP_")}
    env.update({"NEW_SEGMENT_YAML": new_segment,"CDP_WAREHOUSE": str(tmp_path / "warehouse.duckdb"), "CDP_DBT_TARGET": "duckdb",
                "CDP_LANDING_DIR": str(tmp_path / "landing")})
    result = subprocess.run([sys.executable, "-c", RUN_IN_COPY], cwd=copy, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["module"].startswith(str(copy))  # the copy ran, not this repository

    first = report["first"]
    assert first["success"]
    assert "picked_up_in_run" in first["names"] and "high_value" in first["names"]
    assert first["checks"] == [[True, ""]]
    assert "picked_up_in_run" in (copy / seg.COMPILED_MODEL.relative_to(seg.PROJECT_DIR)).read_text()

    second = report["second"]
    assert second["success"]  # the rest of the run goes on, on the last good compiled model
    assert second["names"] == first["names"]
    [(passed, description)] = second["checks"]
    assert not passed
    assert "zz_broken.yml: segments[0] (broken_one).condition[no_such_column]" in description
    assert report["warned"] and "zz_broken.yml" in report["warned"][0]
