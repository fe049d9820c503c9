"""Columns and typing: a header matched to the contract, and the SQL that types each value."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orchestration.ingestion.contract import (
    MAX_COLUMNS_ENV,
    MAX_FIELD_BYTES_ENV,
    ColumnType,
    LandingSource,
)
from orchestration.ingestion.errors import LandingFileError

METADATA_COLUMNS: dict[str, str] = {
    "_source_file": "VARCHAR",
    "_source_line": "BIGINT",
    "_loaded_at": "TIMESTAMPTZ",
}
SQL_TYPES: dict[ColumnType, str] = {
    "text": "VARCHAR",
    "timestamp": "TIMESTAMPTZ",
    "number": "DOUBLE",
    "integer": "BIGINT",
}
REJECT_REASONS: dict[ColumnType, str] = {
    "timestamp": "not a timestamp (expected ISO 8601, e.g. 2025-03-04T10:11:12Z)",
    "number": "not a finite number (expected e.g. 1234.50)",
    "integer": "not an integer",
}
# Whitespace trimmed from every value before it is typed (space, tab, CR, LF); empty is NULL.
_TRIM_SQL = "' ' || chr(9) || chr(13) || chr(10)"
MAX_RAW_VALUE_CHARS = 1000


@dataclass(frozen=True)
class Column:
    """One column of a landing file: its name in the file, its contract name and type."""

    file_name: str
    name: str
    type: ColumnType
    known: bool


@dataclass(frozen=True)
class Reject:
    line: int | None
    column_name: str | None
    raw_value: str | None
    reason: str


def match_columns(
    source: LandingSource, relative: str, header: Sequence[str], max_columns: int
) -> list[Column]:
    """Match a file's header to the contract; raise LandingFileError naming what is wrong."""
    if len(header) > max_columns:
        raise LandingFileError(
            relative, f"has {len(header):,} columns, more than the limit of {max_columns:,} "
            f"columns per file ({MAX_COLUMNS_ENV}); refused before reading its rows, nothing of "
            f"source {source.name} was changed",
        )
    known = set(source.known_columns)
    columns: list[Column] = []
    seen: dict[str, int] = {}
    for position, file_name in enumerate(header, start=1):
        name = file_name.strip().lower()
        if name == "":
            raise LandingFileError(relative, f"column {position} of the header has no name")
        if name in seen:
            raise LandingFileError(
                relative, f"column {name!r} appears twice in the header (columns {seen[name]} "
                f"and {position})"
            )
        if name in METADATA_COLUMNS:
            raise LandingFileError(relative, f"column {name!r} is reserved for the loader")
        seen[name] = position
        in_contract = name in known
        column_type = source.column_type(name) if in_contract else "text"
        columns.append(Column(file_name, name, column_type, in_contract))
    missing = [c for c in source.required if c not in seen]
    if missing:
        raise LandingFileError(
            relative,
            f"missing required column(s) {', '.join(missing)} for source {source.name} "
            f"(the file has: {', '.join(seen) or 'no columns'})",
        )
    # Known columns absent from the file are simply NULL in raw; the table already has them.
    return columns


def staging_select(
    columns: Sequence[Column],
    source_exprs: Sequence[str],
    relation: str,
    carried: Sequence[str],
    max_field_bytes: int,
) -> str:
    """One pass over a file: per column _c<i> (typed value) and _e<i> (the text when it is
    rejected, else NULL), for text columns _r<i> (why: longer than `max_field_bytes`, or a NUL
    byte); _bad when any value is rejected; `carried` passed along.

    Layered so that each value is trimmed once and cast once. Trimming removes spaces, tabs, CR
    and LF at both ends; what is left empty is NULL.
    """
    carried_names = [expr.rsplit(" as ", 1)[-1] for expr in carried]
    spaces_trimmed = [f"trim(cast({expr} as varchar)) as _t{i}"
                      for i, expr in enumerate(source_exprs)]
    # Trimming a set of characters is slow; only values that still start or end with a tab,
    # CR or LF after trimming spaces (rare) take that path.
    trimmed = [
        f"nullif(case when ascii(_t{i}) in (9, 10, 13) or ends_with(_t{i}, chr(9)) "
        f"or ends_with(_t{i}, chr(10)) or ends_with(_t{i}, chr(13)) "
        f"then trim(_t{i}, {_TRIM_SQL}) else _t{i} end, '') as _v{i}"
        for i in range(len(source_exprs))
    ]
    cast, checked, final, oks = [], [], [], []
    for i, column in enumerate(columns):
        v, p = f"_v{i}", f"_p{i}"
        if column.type == "text":
            cast.append(f"{v} as _c{i}")
            checked += [f"_c{i}", _text_problem(f"_c{i}", max_field_bytes) + f" as _r{i}"]
            final += [f"_c{i}", f"_r{i}",
                      f"case when _r{i} is not null then "
                      f"replace(left(_c{i}, {MAX_RAW_VALUE_CHARS}), chr(0), '\\0') end as _e{i}"]
            oks.append(f"_r{i} is null")
            continue
        cast.append(v)
        if column.type == "timestamp":
            cast.append(f"try_cast({v} as timestamptz) as {p}")
            # ISO 8601: starts with a 4-digit year, which also keeps 'epoch' and 'infinity' out.
            valid = (f"isfinite({p}) and substr({v}, 5, 1) = '-' "
                     f"and substr({v}, 1, 1) between '0' and '9'")
        elif column.type == "number":
            cast.append(f"try_cast({v} as double) as {p}")
            valid = f"isfinite({p})"
        elif column.type == "integer":
            cast.append(f"try_cast({v} as bigint) as {p}")
            valid = f"{p} = try_cast({v} as double)"  # '2.5' would round; it is not an integer
        else:
            raise ValueError(f"unknown column type {column.type!r}")
        checked += [v, p, f"coalesce({v} is null or ({valid}), false) as _ok{i}"]
        final += [f"case when _ok{i} then {p} end as _c{i}",
                  f"case when not _ok{i} then left({v}, {MAX_RAW_VALUE_CHARS}) end as _e{i}"]
        oks.append(f"_ok{i}")
    final.append(f"not ({' and '.join(oks) or 'true'}) as _bad")
    return (
        f"select {', '.join(final + carried_names)} from ("
        f" select {', '.join(checked + carried_names)} from ("
        f"  select {', '.join(cast + carried_names)} from ("
        f"   select {', '.join(trimmed + carried_names)} from ("
        f"    select {', '.join(spaces_trimmed + list(carried))} from {relation}))))"
    )


def _text_problem(value: str, max_field_bytes: int) -> str:
    """SQL: why a text value is rejected (too long, or holds a NUL byte), else NULL."""
    return (
        f"case when strlen({value}) > {int(max_field_bytes)} then 'value of ' || "
        f"strlen({value}) || ' bytes, longer than the limit of {max_field_bytes:,} bytes per "
        f"value ({MAX_FIELD_BYTES_ENV})' "
        f"when contains({value}, chr(0)) then 'contains a NUL byte (character ' || "
        f"instr({value}, chr(0)) || '); NUL is not allowed in text values, shown here as \\0' "
        "end"
    )
