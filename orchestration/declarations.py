"""Declarations (segment and sync YAML) are data: checks that keep template and SQL syntax out.

Generated dbt models are rendered by Jinja, so a `{{`, `{%` or `{#` in a declared string would run
as code there (`env_var`, `run_query`); no string field of a declaration may hold one. Values that
reach SQL become escaped literals (`sql_literal`), never SQL text.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

TEMPLATE_MARKERS = ("{{", "{%", "{#")


def template_problems(value: Any, field: str = "") -> list[str]:
    """`<field>: ...` for every string (or mapping key) under `value` that opens a template.

    The message names the field and the marker, never the value (it may hold a secret)."""
    problems: list[str] = []
    if isinstance(value, str):
        found = [m for m in TEMPLATE_MARKERS if m in value]
        if found:
            problems.append(f"{field or '(value)'}: contains template syntax {found[0]!r}; "
                            "declarations are data, not code: remove it")
    elif isinstance(value, dict):
        for key, item in value.items():
            path = f"{field}.{key}" if field else str(key)
            problems += template_problems(key, f"{path} (key)") if isinstance(key, str) else []
            problems += template_problems(item, path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problems += template_problems(item, f"{field}[{index}]")
    return problems


def text_problem(value: str) -> str | None:
    """Why a text value cannot be a portable SQL literal, or None.

    Backslashes escape quotes in Spark SQL literals and control characters break generated
    lines, so both are refused rather than escaped per engine."""
    if "\\" in value:
        return "contains a backslash (not portable in a SQL literal)"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "contains a control character"
    if any(m in value for m in TEMPLATE_MARKERS):
        return "contains template syntax"
    return None


def sql_literal(value: Any) -> str:
    """An escaped SQL literal for a scalar; raises ValueError for what cannot be one safely."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number")
        return repr(value)
    if not isinstance(value, str):
        raise ValueError(f"{type(value).__name__} is not a scalar")
    problem = text_problem(value)
    if problem:
        raise ValueError(f"text value {problem}")
    return "'" + value.replace("'", "''") + "'"


def read_yaml(path: Path) -> tuple[Any, str | None]:
    """The parsed YAML of a declaration file, or None and `<path>: cannot read: <why>`."""
    try:
        return yaml.safe_load(path.read_text()), None
    except (OSError, yaml.YAMLError) as exc:
        return None, f"{path}: cannot read: {exc}"


def field_errors(error: ValidationError) -> list[str]:
    """`<field.path>: <message>` for every error pydantic found (aliases as the YAML spells
    them: a trailing underscore is dropped)."""
    messages = []
    for item in error.errors():
        field = ".".join(str(part).removesuffix("_") for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        messages.append(f"{field}: {message}" if field else message)
    return messages
