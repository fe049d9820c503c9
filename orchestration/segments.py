"""Segments declared in YAML (segments/*.yml): validation and compilation into a dbt model.

A segment names an audience and a condition over the columns of the dbt model
`int_customers_segment_inputs` (profile, features, predictions, RFM scores). The column catalogue
and its types are read from that model's YAML, so a new column becomes usable in segments as
soon as it is documented there. Errors name the file, the segment and the field.

    python -m orchestration.segments check     # validate every file
    python -m orchestration.segments compile   # (re)write the generated dbt model

The compiled model (`COMPILED_MODEL`, under models/marts/segments/evaluation/) is checked in; a
test fails when it is out of date with the YAML. Every run compiles it before dbt builds
(`compile_for_run`), and loading the Dagster definitions validates the YAML and warns.

Why one file of ~510 lines: it is one concern, the segment language (its pydantic grammar, the
checks against the column catalogue, and the SQL each condition compiles to), and a condition's
validation and its SQL change together; the event conditions of issue 18 will make it a package.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestration.declarations import (field_errors, read_yaml, sql_literal, template_problems,
                                         text_problem)
from orchestration.settings import PROJECT_DIR

SEGMENTS_DIR = PROJECT_DIR / "segments"
INPUTS_MODEL = "int_customers_segment_inputs"
INPUTS_YAML = PROJECT_DIR / "models" / "marts" / "segments" / "evaluation" / "_evaluation__models.yml"
COMPILED_MODEL = PROJECT_DIR / "models" / "marts" / "segments" / "evaluation" / "int_segment_members_evaluated.sql"
DEFINITIONS_MODEL = PROJECT_DIR / "models" / "intermediate" / "segments" / "int_segment_definitions.sql"
CONSENT_PURPOSES_SEED = PROJECT_DIR / "seeds" / "consent_purposes.csv"

ColumnKind = Literal["number", "text", "timestamp", "boolean"]
Scalar = Union[bool, int, float, str]

COMPARISONS = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
SYMBOLS = {"=": "eq", "==": "eq", "!=": "ne", "<>": "ne", ">": "gt", ">=": "gte", "<": "lt",
           "<=": "lte"}
OPERATORS: dict[str, set[ColumnKind]] = {
    **{op: {"number", "text", "timestamp"} for op in ("eq", "ne")},
    **{op: {"number", "timestamp"} for op in ("gt", "gte", "lt", "lte")},
    "between": {"number"},
    "in": {"number", "text"},
    "not_in": {"number", "text"},
    "is_null": {"number", "text", "timestamp", "boolean"},
    "is_not_null": {"number", "text", "timestamp", "boolean"},
    "is_true": {"boolean"},
    "is_false": {"boolean"},
    "within_last_days": {"timestamp"},
    "not_within_last_days": {"timestamp"},
}
NAME_PATTERN = r"^[a-z][a-z0-9_]*$"


class SegmentError(ValueError):
    """A segment file is invalid; the message names the file, the segment and the field."""


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    column: str
    op: str
    value: Scalar | list[Scalar] | None = None

    @field_validator("op")
    @classmethod
    def known_operator(cls, op: str) -> str:
        op = SYMBOLS.get(op, op)
        if op not in OPERATORS:
            raise ValueError(f"unknown operator {op!r}; use one of {', '.join(sorted(OPERATORS))}")
        return op


class All(BaseModel):
    all: list["Condition"]


class Any_(BaseModel):
    any: list["Condition"]


class Not(BaseModel):
    not_: "Condition"


Condition = Union[Rule, All, Any_, Not]
All.model_rebuild()
Any_.model_rebuild()
Not.model_rebuild()


def parse_condition(raw: Any, field: str = "condition") -> tuple[Condition | None, list[str]]:
    """A condition tree from YAML: a rule {column, op, value} or {all: [...]}, {any: [...]}, {not: ...}.

    Returns (condition, errors); errors are "<field>: <problem>" with the path inside the tree.
    """
    if not isinstance(raw, dict):
        return None, [f"{field}: expected a mapping (a rule or all/any/not), got {raw!r}"]
    combinators = [key for key in ("all", "any", "not") if key in raw]
    if combinators:
        key = combinators[0]
        if len(raw) != 1:
            return None, [f"{field}: `{key}` must be the only key, got {sorted(raw)}"]
        if key == "not":
            child, errors = parse_condition(raw["not"], f"{field}.not")
            return (Not(not_=child) if child is not None else None), errors
        items = raw[key]
        if not isinstance(items, list) or not items:
            return None, [f"{field}.{key}: expected a non-empty list of conditions"]
        children, errors = [], []
        for index, item in enumerate(items):
            child, child_errors = parse_condition(item, f"{field}.{key}[{index}]")
            children.append(child)
            errors.extend(child_errors)
        if errors:
            return None, errors
        return (All(all=children) if key == "all" else Any_(any=children)), []
    try:
        return Rule.model_validate(raw), []
    except ValidationError as exc:
        return None, [f"{field}.{message}" for message in field_errors(exc)]


class Segment(BaseModel):
    """One segment; `condition` is parsed by parse_condition (pydantic unions give poor errors)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    name: str = Field(pattern=NAME_PATTERN, max_length=63)
    description: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    condition: Any = None
    consent_purpose: str | None = None


class LoadedSegment(BaseModel):
    segment: Segment
    path: Path


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


def _literal(value: Scalar) -> str:
    """An escaped SQL literal; values were validated, so a refusal here is a bug, not input."""
    return sql_literal(value)


def _typed_literal(value: Scalar, kind: ColumnKind) -> str:
    if kind == "timestamp":
        return f"cast({_literal(str(value))} as timestamp)"
    return _literal(value)


def compile_condition(condition: Condition, columns: dict[str, ColumnKind], indent: int = 0) -> str:
    """Portable SQL (with dbt Jinja for date arithmetic) for one condition over `inputs`.

    With `indent` > 0 the SQL is laid out one rule per line (sqlfluff style) for the generated
    model; without, it is one line. A rule on a NULL value does not match; `not` of it does.
    """
    pad, inner = "\n" + " " * indent, "\n" + " " * (indent + 4)
    if isinstance(condition, (All, Any_)):
        children = condition.all if isinstance(condition, All) else condition.any
        keyword = "and" if isinstance(condition, All) else "or"
        if len(children) == 1:
            return compile_condition(children[0], columns, indent)
        if indent:
            parts = [compile_condition(c, columns, indent + 4) for c in children]
            return "(" + inner + (inner + keyword + " ").join(parts) + pad + ")"
        return "(" + f" {keyword} ".join(compile_condition(c, columns) for c in children) + ")"
    if isinstance(condition, Not):
        child = compile_condition(condition.not_, columns, indent + 4 if indent else 0)
        if indent:
            return "not coalesce(" + inner + child + "," + inner + "false" + pad + ")"
        return f"not coalesce({child}, false)"
    rule, column = condition, f"inputs.{condition.column}"
    kind = columns[rule.column]
    if rule.op in COMPARISONS:
        return f"{column} {COMPARISONS[rule.op]} {_typed_literal(rule.value, kind)}"
    if rule.op in ("in", "not_in"):
        values = ", ".join(_literal(v) for v in rule.value)
        return f"{column} {'not in' if rule.op == 'not_in' else 'in'} ({values})"
    if rule.op == "between":
        low, high = rule.value
        return f"{column} between {_literal(low)} and {_literal(high)}"
    if rule.op == "is_null":
        return f"{column} is null"
    if rule.op == "is_not_null":
        return f"{column} is not null"
    if rule.op == "is_true":
        return f"{column} = true"
    if rule.op == "is_false":
        return f"{column} = false"
    since = f"{{{{ dbt.dateadd('day', -{int(rule.value)}, as_of_timestamp()) }}}}"
    if rule.op == "within_last_days":
        return f"{column} >= {since}"
    return f"{column} < {since}"  # not_within_last_days


def _where_clause(condition: Condition, columns: dict[str, ColumnKind]) -> str:
    """`where` and the condition, a top-level `all` as one rule per line."""
    if isinstance(condition, All) and len(condition.all) > 1:
        rules = [compile_condition(c, columns, 8) for c in condition.all]
        return "    where\n        " + "\n        and ".join(rules)
    return "    where\n        " + compile_condition(condition, columns, 8)


def _fit_line(line: str) -> str:
    """Generated lines longer than the lint limit (long descriptions) are exempted explicitly."""
    return line + "  -- noqa: LT05" if len(line) > 100 else line


HEADER = """-- grain: {grain}
-- GENERATED by `python -m orchestration.segments compile` from segments/*.yml: do not edit.
"""


def render_members_model(segments: Sequence[LoadedSegment], columns: dict[str, ColumnKind]) -> str:
    """The dbt model evaluating every segment: one row per (segment_name, customer_id)."""
    parts = [HEADER.format(grain="one row per segment_name and customer_id currently in it"),
             "with inputs as (",
             f"    select * from {{{{ ref('{INPUTS_MODEL}') }}}}",
             "),",
             "",
             "consents as (",
             "    select * from {{ ref('int_customers_consents_decided') }}",
             "),",
             ""]
    selects = []
    for item in segments:
        segment = item.segment
        lines = [
            "    select",
            f"        {_literal(segment.name)} as segment_name,",
            "        inputs.customer_id",
            "    from inputs",
        ]
        if segment.consent_purpose:
            lines += [
                "    inner join consents",
                "        on",
                "            inputs.customer_id = consents.customer_id",
                f"            and consents.purpose = {_literal(segment.consent_purpose)}",
                "            and consents.is_granted",
            ]
        lines.append(_where_clause(segment.condition, columns))
        selects.append("\n".join(lines))
    if not selects:
        selects.append("    select\n        cast(null as {{ dbt.type_string() }}) as segment_name,\n"
                       "        inputs.customer_id\n    from inputs\n    where 1 = 0")
    parts += ["members as (", "\n    union all\n".join(selects), "),", "",
              "final as (", "    select distinct", "        segment_name,", "        customer_id",
              "    from members", ")", "", "select * from final", ""]
    return "\n".join(parts)


def render_definitions_model(segments: Sequence[LoadedSegment], columns: dict[str, ColumnKind]) -> str:
    """The dbt model listing every declared segment (name, description, owner, consent, rule)."""
    rows = []
    for item in segments:
        segment = item.segment
        rule = compile_condition(segment.condition, columns).replace("{{", "{ {").replace("}}", "} }")
        rows.append("\n".join([
            "    select",
            f"        {_literal(segment.name)} as segment_name,",
            f"        {_literal(' '.join(segment.description.split()))} as segment_description,",
            f"        {_literal(segment.owner)} as segment_owner,",
            f"        {_literal(segment.consent_purpose) if segment.consent_purpose else 'cast(null as {{ dbt.type_string() }})'}"
            " as consent_purpose,",
            f"        {_literal(rule)} as condition_sql,",
            f"        {_literal(item.path.relative_to(PROJECT_DIR).as_posix() if item.path.is_relative_to(PROJECT_DIR) else item.path.name)}"
            " as declared_in",
        ]))
    body = "\n    union all\n".join(rows)
    body = "\n".join(_fit_line(line) for line in body.splitlines())
    return "\n".join([HEADER.format(grain="one row per declared segment (segment_name)"),
                      "with declared as (", body, "),", "", "final as (",
                      "    select * from declared", ")", "", "select * from final", ""])


def compile_segments(write: bool = True) -> dict[Path, str]:
    """Validate segments/*.yml and render the generated models; write them when `write`."""
    columns = column_catalogue()
    segments = load_segments(columns=columns)
    outputs = {
        COMPILED_MODEL: render_members_model(segments, columns),
        DEFINITIONS_MODEL: render_definitions_model(segments, columns),
    }
    if write:
        for path, text in outputs.items():
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
    return outputs


def compile_for_run() -> str | None:
    """Compile the segment YAML before dbt builds, so a run never uses a stale model. An invalid
    declaration writes nothing (the last good compiled models stay in place) and is returned
    as the error naming file, segment and field; None when the models are current."""
    try:
        compile_segments(write=True)
    except SegmentError as exc:
        return str(exc)
    return None


def declaration_problem() -> str | None:
    """What is wrong with the segment YAML or the compiled models right now (nothing written):
    an invalid declaration, or compiled models out of date with the YAML; None when all is well."""
    try:
        outputs = compile_segments(write=False)
    except SegmentError as exc:
        return str(exc)
    stale = [p for p, text in outputs.items() if not p.exists() or p.read_text() != text]
    if stale:
        return ("compiled segment models out of date with the YAML (the next run compiles them): "
                + ", ".join(p.name for p in stale))
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.segments")
    parser.add_argument("command", choices=["check", "compile"])
    args = parser.parse_args(argv)
    try:
        outputs = compile_segments(write=args.command == "compile")
    except SegmentError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.command == "check":
        stale = [p for p, text in outputs.items() if not p.exists() or p.read_text() != text]
        if stale:
            print("out of date, run `python -m orchestration.segments compile`: "
                  + ", ".join(str(p.relative_to(PROJECT_DIR)) for p in stale), file=sys.stderr)
            return 1
    print(f"{len(load_segments())} segments OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
