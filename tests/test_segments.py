"""Segment declarations: validation errors that name file and segment, and compilation to SQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

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
