"""Validation of segment YAML against the column catalogues (segment inputs, customer_events)."""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from orchestration.declarations import field_errors, read_yaml, template_problems, text_problem
from orchestration.segments.grammar import (OPERATORS, All, Any_, ColumnKind, Condition,
                                            EventRule, LoadedSegment, Not, Scalar, Segment,
                                            SegmentError, parse_condition)
from orchestration.settings import PROJECT_DIR

SEGMENTS_DIR = PROJECT_DIR / "segments"
INPUTS_MODEL = "int_customers_segment_inputs"
INPUTS_YAML = PROJECT_DIR / "models" / "marts" / "segments" / "evaluation" / "_evaluation__models.yml"
EVENTS_MODEL = "customer_events"
EVENTS_YAML = PROJECT_DIR / "models" / "marts" / "customers" / "_customers__models.yml"
EVENT_COLUMNS_NOT_FILTERED = {"event_id", "customer_id", "source_record_id", "event_type",
                              "occurred_at", "loaded_at", "written_at"}
CONSENT_PURPOSES_SEED = PROJECT_DIR / "seeds" / "consent_purposes.csv"


def column_catalogue(path: Path = INPUTS_YAML) -> dict[str, ColumnKind]:
    """Columns of the segment inputs model and their kind, from the model's YAML `data_type`s."""
    document = yaml.safe_load(path.read_text())
    for model in document.get("models", []):
        if model["name"] == INPUTS_MODEL:
            return {c["name"]: _kind(c.get("data_type", "varchar")) for c in model["columns"]}
    raise SegmentError(f"{path}: no model {INPUTS_MODEL}")


def _kind(data_type: str) -> ColumnKind:
    data_type = data_type.lower()
    if data_type.startswith(("int", "bigint", "decimal", "numeric", "double", "float", "real")):
        return "number"
    if data_type.startswith("timestamp") or data_type == "date":
        return "timestamp"
    if data_type.startswith("bool"):
        return "boolean"
    return "text"


def consent_purposes(path: Path = CONSENT_PURPOSES_SEED) -> set[str]:
    lines = path.read_text().splitlines()[1:]
    return {line.split(",", 1)[0].strip() for line in lines if line.strip()}


def _where(path: Path, index: int, name: str | None) -> str:
    return f"{path}: segments[{index}]" + (f" ({name})" if name else "")


def _check_condition(condition: Condition, columns: dict[str, ColumnKind], where: str) -> list[str]:
    if isinstance(condition, All):
        return [e for c in condition.all for e in _check_condition(c, columns, where)]
    if isinstance(condition, Any_):
        return [e for c in condition.any for e in _check_condition(c, columns, where)]
    if isinstance(condition, Not):
        return _check_condition(condition.not_, columns, where)
    if isinstance(condition, EventRule):
        return _check_event(condition, where)
    rule = condition
    field = f"{where}.condition[{rule.column}]"
    if rule.column not in columns:
        return [f"{field}: unknown column {rule.column!r}; known columns are listed in "
                f"{INPUTS_YAML.relative_to(PROJECT_DIR)} ({INPUTS_MODEL})"]
    kind = columns[rule.column]
    if kind not in OPERATORS[rule.op]:
        return [f"{field}: operator {rule.op!r} does not apply to a {kind} column"]
    value = rule.value
    if rule.op in ("is_null", "is_not_null", "is_true", "is_false"):
        return [] if value is None else [f"{field}: operator {rule.op!r} takes no value"]
    if rule.op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            return [f"{field}: operator {rule.op!r} needs a non-empty list value"]
        return [e for v in value for e in _check_scalar(v, kind, field)]
    if rule.op == "between":
        if not isinstance(value, list) or len(value) != 2:
            return [f"{field}: operator 'between' needs a value [low, high]"]
        return [e for v in value for e in _check_scalar(v, kind, field)]
    if rule.op in ("within_last_days", "not_within_last_days"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return [f"{field}: operator {rule.op!r} needs a whole number of days >= 0"]
        return []
    if value is None or isinstance(value, list):
        return [f"{field}: operator {rule.op!r} needs one value"]
    return _check_scalar(value, kind, field)


@functools.lru_cache(maxsize=4)
def event_catalogue(path: Path = EVENTS_YAML) -> dict[str, ColumnKind]:
    """Columns of the mart customer_events an event rule may filter on (`where`) or add up
    (`sum`), with their kind, from the mart's YAML; keys and times are left out."""
    document = yaml.safe_load(path.read_text())
    for model in document.get("models", []):
        if model["name"] == EVENTS_MODEL:
            return {c["name"]: _kind(c.get("data_type", "varchar")) for c in model["columns"]
                    if c["name"] not in EVENT_COLUMNS_NOT_FILTERED}
    raise SegmentError(f"{path}: no model {EVENTS_MODEL}")


def _check_event(rule: EventRule, where: str) -> list[str]:
    field = f"{where}.condition[event {rule.event}]"
    columns = event_catalogue()
    known = f"; {EVENTS_MODEL} columns usable here: {', '.join(sorted(columns))}"
    errors = [f"{field}.event: the value {text_problem(rule.event)}"] if text_problem(rule.event) else []
    for column, value in rule.where.items():
        if column not in columns:
            errors.append(f"{field}.where.{column}: unknown event column {column!r}{known}")
            continue
        values = value if isinstance(value, list) else [value]
        if not values:
            errors.append(f"{field}.where.{column}: an empty list matches nothing")
        errors.extend(e for v in values for e in _check_scalar(v, columns[column],
                                                                f"{field}.where.{column}"))
    if rule.sum is not None and rule.sum not in columns:
        errors.append(f"{field}.sum: unknown event column {rule.sum!r}{known}")
    elif rule.sum is not None and columns[rule.sum] != "number":
        errors.append(f"{field}.sum: {rule.sum!r} is not a number column")
    return errors


def _check_scalar(value: Scalar, kind: ColumnKind, field: str) -> list[str]:
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return [f"{field}: {value!r} is not a number"]
    if kind == "number" and isinstance(value, float) and not math.isfinite(value):
        return [f"{field}: {value!r} is not a finite number"]
    if kind == "text" and not isinstance(value, str):
        return [f"{field}: {value!r} is not text (quote it)"]
    if isinstance(value, str) and text_problem(value):
        return [f"{field}: the value {text_problem(value)}"]
    if kind == "timestamp":
        try:
            dt.datetime.fromisoformat(str(value))
        except ValueError:
            return [f"{field}: {value!r} is not an ISO date or timestamp"]
    return []


def _parse_segment(entry: dict[str, Any]) -> tuple[Segment | None, list[str]]:
    """The segment and every structural problem of it (fields and condition tree)."""
    errors: list[str] = []
    header = None
    try:
        header = Segment.model_validate({k: v for k, v in entry.items() if k != "condition"})
    except ValidationError as exc:
        errors.extend(field_errors(exc))
    if "condition" not in entry:
        errors.append("condition: Field required")
        return None, errors
    condition, condition_errors = parse_condition(entry["condition"])
    errors.extend(condition_errors)
    if header is None or condition is None:
        return None, errors
    return header.model_copy(update={"condition": condition}), errors


def load_segments(
    paths: Iterable[Path] | None = None,
    columns: dict[str, ColumnKind] | None = None,
    purposes: set[str] | None = None,
) -> list[LoadedSegment]:
    """Every segment of the YAML files, validated; raises SegmentError listing every problem."""
    paths = sorted(SEGMENTS_DIR.glob("*.yml")) if paths is None else list(paths)
    columns = column_catalogue() if columns is None else columns
    purposes = consent_purposes() if purposes is None else purposes
    errors: list[str] = []
    loaded: list[LoadedSegment] = []
    seen: dict[str, Path] = {}
    for path in paths:
        raw, unreadable = read_yaml(path)
        if unreadable:
            errors.append(unreadable)
            continue
        if not isinstance(raw, dict) or not isinstance(raw.get("segments"), list):
            errors.append(f"{path}: expected a mapping with a `segments:` list")
            continue
        for index, entry in enumerate(raw["segments"]):
            name = entry.get("name") if isinstance(entry, dict) else None
            where = _where(path, index, name)
            if not isinstance(entry, dict):
                errors.append(f"{where}: expected a mapping")
                continue
            unsafe = template_problems(entry) + _text_field_problems(entry, path)
            errors.extend(f"{where}.{message}" for message in unsafe)
            segment, segment_errors = _parse_segment(entry)
            errors.extend(f"{where}.{message}" for message in segment_errors)
            if segment is None or unsafe:
                continue
            errors.extend(_check_condition(segment.condition, columns, where))
            if segment.consent_purpose is not None and segment.consent_purpose not in purposes:
                errors.append(f"{where}.consent_purpose: unknown purpose "
                              f"{segment.consent_purpose!r}; known: {', '.join(sorted(purposes))}")
            if segment.name in seen:
                errors.append(f"{where}.name: segment {segment.name!r} is already declared in "
                              f"{seen[segment.name]}")
            seen[segment.name] = path
            loaded.append(LoadedSegment(segment=segment, path=path))
    if errors:
        raise SegmentError("invalid segment declarations:\n  " + "\n  ".join(errors))
    return loaded


def _text_field_problems(entry: dict[str, Any], path: Path) -> list[str]:
    """Free-text fields become SQL literals in a generated model: no backslash or control
    character (descriptions may wrap; their whitespace is collapsed first)."""
    problems = []
    texts = {k: entry.get(k) for k in ("name", "owner", "consent_purpose")}
    if isinstance(entry.get("description"), str):
        texts["description"] = " ".join(entry["description"].split())
    for field, value in texts.items():
        if isinstance(value, str) and text_problem(value):
            problems.append(f"{field}: {text_problem(value)}")
    if text_problem(path.name):
        problems.append(f"(file name): {text_problem(path.name)}")
    return problems
