"""The segment language's grammar: pydantic models of a segment and its condition tree."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orchestration.declarations import field_errors

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


WINDOW_PATTERN = r"^([1-9][0-9]*)([mhdw])$"
WINDOW_UNITS = {"m": ("minute", 1), "h": ("hour", 1), "d": ("day", 1), "w": ("day", 7)}


def parse_window(text: Any) -> tuple[str, int]:
    """A window such as `30m`, `1h`, `7d`, `2w` as (dbt datepart, amount); ValueError if bad."""
    match = re.match(WINDOW_PATTERN, text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"bad window {text!r}; write a whole number and a unit m, h, d or w "
                         "(e.g. 30m, 1h, 7d, 2w)")
    datepart, factor = WINDOW_UNITS[match.group(2)]
    return datepart, int(match.group(1)) * factor


class EventRule(BaseModel):
    """A condition on the customer's events in customer_events (one measure per rule):
    at_least/at_most (counts), none (no such event), sum + one comparison, or the recency
    measures last_within (the latest such event is recent) / not_within (had one, none recently).
    Without a measure it means at_least 1. `within` bounds the counted events to the window
    before the run's as-of time."""

    model_config = ConfigDict(extra="forbid")
    event: str = Field(min_length=1)
    where: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    within: str | None = None
    at_least: int | None = Field(default=None, ge=0)
    at_most: int | None = Field(default=None, ge=0)
    none: bool | None = None
    sum: str | None = None
    eq: int | float | None = None
    ne: int | float | None = None
    gt: int | float | None = None
    gte: int | float | None = None
    lt: int | float | None = None
    lte: int | float | None = None
    last_within: str | None = None
    not_within: str | None = None

    @field_validator("within", "last_within", "not_within")
    @classmethod
    def known_window(cls, window: str | None) -> str | None:
        if window is not None:
            parse_window(window)
        return window

    def comparisons(self) -> dict[str, int | float]:
        return {op: getattr(self, op) for op in COMPARISONS if getattr(self, op) is not None}

    @model_validator(mode="after")
    def one_measure(self) -> "EventRule":
        measures = [name for name, used in (
            ("at_least/at_most", self.at_least is not None or self.at_most is not None),
            ("none", bool(self.none)), ("sum", self.sum is not None),
            ("last_within", self.last_within is not None),
            ("not_within", self.not_within is not None)) if used]
        if len(measures) > 1:
            raise ValueError(f"use one measure per event rule, got {', '.join(measures)}")
        if self.none is False:
            raise ValueError("`none: false` means nothing; leave `none` out")
        if self.sum is not None and len(self.comparisons()) != 1:
            raise ValueError("`sum` needs exactly one comparison (eq, ne, gt, gte, lt or lte)")
        if self.sum is None and self.comparisons():
            raise ValueError(f"comparison {sorted(self.comparisons())} applies only with `sum`")
        if (self.last_within or self.not_within) and self.within:
            raise ValueError("`last_within`/`not_within` carry their own window; drop `within`")
        if (self.at_least is not None and self.at_most is not None
                and self.at_least > self.at_most):
            raise ValueError(f"at_least {self.at_least} is more than at_most {self.at_most}")
        return self


class All(BaseModel):
    all: list["Condition"]


class Any_(BaseModel):
    any: list["Condition"]


class Not(BaseModel):
    not_: "Condition"


Condition = Union[Rule, EventRule, All, Any_, Not]
All.model_rebuild()
Any_.model_rebuild()
Not.model_rebuild()


def parse_condition(raw: Any, field: str = "condition") -> tuple[Condition | None, list[str]]:
    """A condition tree from YAML: a rule {column, op, value}, an event rule {event, ...}, or {all: [...]}, {any: [...]}, {not: ...}.

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
    model = EventRule if "event" in raw else Rule
    try:
        return model.model_validate(raw), []
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
