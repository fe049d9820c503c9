"""Phone numbers to E.164 with libphonenumber: the raw-side lookup `raw._phone_numbers` for staging.

Parsing a phone number needs the record's country and Google's numbering plan metadata; neither
is something SQL can do portably (DuckDB, PostgreSQL, Spark). So the loader keeps a lookup table
in the raw schema, one row per distinct (raw phone text, raw country text) pair found in the raw
tables listed in dbt var `phone_numbers.sources`, with the E.164 form when the `phonenumbers`
library says the number is valid (var `phone_numbers.require`: `valid` or `possible`). Raw
replication copies it like any raw table, and the staging models join it (macro `phone_lookup`).
Only pairs not seen before are parsed; pairs no raw row holds any more (erased, replaced) leave.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import phonenumbers
import yaml

from orchestration.catalog import catalog
from orchestration.settings import PROJECT_DIR

if TYPE_CHECKING:
    from orchestration.warehouse import Warehouse

_log = logging.getLogger(__name__)
REQUIREMENTS = ("valid", "possible")
# Typed by people who will not give a number; a possible length does not make them real.
_SEQUENCES = frozenset({"123456789", "1234567890", "0123456789", "987654321", "9876543210"})


def phone_numbers_relation() -> str:
    """The lookup the loader keeps beside the raw tables: dbt source `phone._phone_numbers`."""
    return catalog().source("phone", "_phone_numbers")


@dataclass(frozen=True)
class PhoneColumn:
    """A raw column holding phone numbers, and where its record's country is (if anywhere)."""

    source: str
    phone: str
    country: str | None = None
    # rows whose `type_column` says 'phone' (consents, privacy requests); None: every row
    type_column: str | None = None
    # the relation of a declared warehouse input (schema.table); None: the raw table `source`
    relation: str | None = None


@dataclass(frozen=True)
class PhoneRules:
    """dbt vars: default calling code, country aliases, validity requirement, phone columns."""

    default_region: str
    country_aliases: Mapping[str, str]
    require: str
    columns: tuple[PhoneColumn, ...]


@dataclass(frozen=True)
class PhoneResult:
    phone_e164: str | None
    is_valid: bool
    reason: str | None


@dataclass(frozen=True)
class PhoneReport:
    """What a refresh did: pairs parsed now, pairs dropped, and invalid numbers in raw."""

    parsed: int
    removed: int
    invalid_values: int
    invalid_rows: int
    # phone columns of declared inputs skipped (table or column missing), one note each
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        return (f"phone numbers: {self.parsed:,} new value(s) parsed, {self.invalid_values:,} "
                f"value(s) in {self.invalid_rows:,} raw row(s) not valid phone numbers (NULL in "
                f"staging, see {phone_numbers_relation()} where not is_valid)"
                + "".join(f"\n  {note}" for note in self.notes))


def _project_vars(project_file: Path | None = None) -> dict[str, Any]:
    return yaml.safe_load((project_file or PROJECT_DIR / "dbt_project.yml").read_text())["vars"]


@cache
def phone_rules(project_file: Path | None = None) -> PhoneRules:
    """The rules from dbt_project.yml vars (one home: staging and this module read the same)."""
    project = _project_vars(project_file)
    config = project["phone_numbers"]
    calling_code = int(str(project["default_phone_country_code"]).lstrip("+"))
    region = phonenumbers.region_code_for_country_code(calling_code)
    if region == phonenumbers.UNKNOWN_REGION:
        raise ValueError(f"dbt var default_phone_country_code: {calling_code} is no country "
                         "calling code")
    require = config.get("require", "valid")
    if require not in REQUIREMENTS:
        raise ValueError(f"dbt var phone_numbers.require: {require!r} is not one of "
                         f"{', '.join(REQUIREMENTS)}")
    columns = tuple(
        PhoneColumn(source, spec["phone"], spec.get("country"), spec.get("type_column"))
        for source, specs in config["sources"].items() for spec in specs)
    aliases = {alias.strip().upper(): code for alias, code in project["country_aliases"].items()}
    return PhoneRules(region, aliases, require, columns)


def declared_phone_columns() -> tuple[PhoneColumn, ...]:
    """The raw phone columns of the valid declared inputs (inputs/*.yml, read now): a landing
    input's in raw.<landing name>, a warehouse input's in its own relation. A warehouse input
    whose relation cannot be resolved is left out with a logged note."""
    from orchestration.ingestion.contract import (
        declared_inputs_or_problems, warehouse_input_relation,
    )

    declarations, _ = declared_inputs_or_problems()  # the loader warns about invalid ones
    found = []
    for declaration in declarations:
        relation = None
        if not declaration.is_landing:
            relation = warehouse_input_relation(declaration)
            if relation is None:
                _log.warning("phone numbers: input %s: dbt source %s.%s not in the manifest "
                             "(run `make parse`), its phones are not parsed", declaration.input,
                             declaration.dbt_source_name, declaration.dbt_source_table)
                continue
        source = declaration.landing_name or declaration.input
        found += [PhoneColumn(source, spec["phone"], spec.get("country"), relation=relation)
                  for spec in declaration.phone_columns()]
    return tuple(found)


def phone_columns(rules: PhoneRules) -> tuple[PhoneColumn, ...]:
    """Every phone column to parse: dbt var `phone_numbers.sources` and the declared inputs'."""
    return rules.columns + declared_phone_columns()


def _missing_note(column: PhoneColumn, relation: str) -> str:
    return (f"phone numbers: {relation} (input {column.source}) has no table or no column "
            f"{column.phone}{' or ' + column.country if column.country else ''}: skipped")


def region_of(country: str | None, rules: PhoneRules) -> str:
    """ISO region for a record's raw country text (aliases as normalize_country), else default."""
    cleaned = (country or "").strip().upper()
    cleaned = rules.country_aliases.get(cleaned, cleaned)
    if cleaned in phonenumbers.SUPPORTED_REGIONS:
        return cleaned
    return rules.default_region


def normalise_phone(raw: str, country: str | None, rules: PhoneRules) -> PhoneResult:
    """E.164 of `raw` parsed in the record's region; None with the reason when not acceptable."""
    try:
        number = phonenumbers.parse(raw, region_of(country, rules))
    except phonenumbers.NumberParseException as error:
        return PhoneResult(None, False, f"not a phone number ({error})")
    national = str(number.national_number)
    if len(set(national)) == 1 or national in _SEQUENCES:
        return PhoneResult(None, False, "placeholder (one repeated digit or a digit sequence)")
    if rules.require == "valid":
        ok = phonenumbers.is_valid_number(number)
    else:
        ok = phonenumbers.is_possible_number(number)
    if not ok:
        return PhoneResult(None, False, f"not a {rules.require} number")
    return PhoneResult(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
                       True, None)


def ensure_phone_numbers_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists raw")
    con.execute(f"""
        create table if not exists {phone_numbers_relation()} (
            phone_raw varchar,
            country_raw varchar,
            region varchar,
            phone_e164 varchar,
            is_valid boolean,
            reason varchar,
            parsed_at timestamptz
        )""")


def _present_columns(con: duckdb.DuckDBPyConnection, columns: Iterable[PhoneColumn],
                     notes: list[str] | None = None) -> list[PhoneColumn]:
    """The columns whose table holds them (declared inputs' missing ones noted in `notes`)."""
    found = {(t, c) for t, c in con.execute(
        "select table_name, column_name from information_schema.columns "
        "where table_schema = 'raw' and table_catalog = current_database()").fetchall()}
    present = []
    for c in columns:
        if c.relation is not None:
            try:
                held = {d[0] for d in con.execute(
                    f"select * from {c.relation} limit 0").description}
            except duckdb.Error:
                held = set()
            found |= {(c.relation, name) for name in held}
        table = c.relation or c.source
        if (table, c.phone) in found and (c.country is None or (table, c.country) in found) \
                and (c.type_column is None or (table, c.type_column) in found):
            present.append(c)
        elif notes is not None:
            notes.append(_missing_note(c, c.relation or f"raw.{c.source}"))
    return present


def _pairs_sql(columns: Iterable[PhoneColumn]) -> str:
    """Every raw (phone text, country text or '') pair, one select per phone column."""
    selects = []
    for column in columns:
        country = f'coalesce(cast("{column.country}" as varchar), \'\')' if column.country \
            else "''"
        where = f'"{column.phone}" is not null'
        if column.type_column:
            where += f" and lower(trim(\"{column.type_column}\")) = 'phone'"
        table = column.relation or f'raw."{column.source}"'
        selects.append(f'select cast("{column.phone}" as varchar) as phone_raw, {country} as '
                       f'country_raw from {table} where {where}')
    return "\nunion all\n".join(selects) or \
        "select null::varchar as phone_raw, null::varchar as country_raw where false"


def refresh_phone_numbers(con: duckdb.DuckDBPyConnection,
                          rules: PhoneRules | None = None) -> PhoneReport:
    """Parse the raw pairs not in the lookup yet; drop pairs no raw row holds any more."""
    rules = rules or phone_rules()
    ensure_phone_numbers_table(con)
    notes: list[str] = []
    columns = _present_columns(con, rules.columns)
    columns += _present_columns(con, declared_phone_columns(), notes)
    con.execute(f"create or replace temp table _phone_pairs as "
                f"select phone_raw, country_raw, count(*) as raw_rows from ({_pairs_sql(columns)}) "
                "group by all")
    removed = con.execute(
        f"delete from {phone_numbers_relation()} as p where not exists "
        "(select 1 from _phone_pairs as r "
        "where r.phone_raw = p.phone_raw and r.country_raw = p.country_raw)").fetchone()[0]
    new = con.execute(
        f"select phone_raw, country_raw from _phone_pairs as r where not exists (select 1 "
        f"from {phone_numbers_relation()} as p where p.phone_raw = r.phone_raw "
        "and p.country_raw = r.country_raw)").fetchall()
    if new:
        results = [normalise_phone(raw, country, rules) for raw, country in new]
        con.execute(
            f"insert into {phone_numbers_relation()} select unnest(?::varchar[]), "
            "unnest(?::varchar[]), unnest(?::varchar[]), unnest(?::varchar[]), "
            "unnest(?::boolean[]), unnest(?::varchar[]), ?",
            [[raw for raw, _ in new], [country for _, country in new],
             [region_of(country, rules) for _, country in new],
             [r.phone_e164 for r in results], [r.is_valid for r in results],
             [r.reason for r in results], dt.datetime.now(dt.UTC)])
    invalid_values, invalid_rows = con.execute(
        f"select count(*), coalesce(sum(r.raw_rows), 0) from _phone_pairs as r "
        f"inner join {phone_numbers_relation()} as p on p.phone_raw = r.phone_raw "
        "and p.country_raw = r.country_raw where not p.is_valid").fetchone()
    con.execute("drop table _phone_pairs")
    for note in notes:
        _log.info(note)
    return PhoneReport(len(new), removed, int(invalid_values), int(invalid_rows), tuple(notes))


def phone_column_relation(column: PhoneColumn) -> str:
    """The relation holding `column` on the target: its declared relation, else raw.<source>."""
    return column.relation or catalog().raw_relation(column.source)


def present_phone_columns_on(wh: "Warehouse", columns: Iterable[PhoneColumn],
                             notes: list[str] | None = None) -> list[PhoneColumn]:
    """The columns whose relation exists on `wh` and holds them (missing ones noted)."""
    held: dict[str, set[str]] = {}
    present = []
    for c in columns:
        relation = phone_column_relation(c)
        if relation not in held:
            held[relation] = set(wh.columns(relation)) if wh.exists(relation) else set()
        if {c.phone, c.country or c.phone, c.type_column or c.phone} <= held[relation]:
            present.append(c)
        elif notes is not None:
            notes.append(_missing_note(c, relation))
    return present


def _pairs_sql_on(wh: "Warehouse", columns: Iterable[PhoneColumn]) -> str:
    """`_pairs_sql` in SQL every engine shares (relations from the catalog, types by sql_type)."""
    text = wh.sql_type("string")
    selects = []
    for column in columns:
        country = (f"coalesce(cast({column.country} as {text}), '')" if column.country
                   else "''")
        where = f"{column.phone} is not null"
        if column.type_column:
            where += f" and lower(trim({column.type_column})) = 'phone'"
        selects.append(f"select cast({column.phone} as {text}) as phone_raw, {country} as "
                       f"country_raw from {phone_column_relation(column)} where {where}")
    return "\nunion all\n".join(selects)


def refresh_phone_numbers_on(wh: "Warehouse", rules: PhoneRules | None = None) -> PhoneReport:
    """`refresh_phone_numbers` on any target warehouse, through the interface: the raw pairs are
    counted by the engine, compared with the lookup here, the lookup changed by delete_keys and
    append (the loader of a PostgreSQL or Spark target calls this; DuckDB keeps the SQL above)."""
    import pandas as pd

    rules = rules or phone_rules()
    relation = phone_numbers_relation()
    if not wh.exists(relation):  # created by the engine from an empty typed frame
        wh.append(relation, pd.DataFrame({
            "phone_raw": pd.Series(dtype="string"), "country_raw": pd.Series(dtype="string"),
            "region": pd.Series(dtype="string"), "phone_e164": pd.Series(dtype="string"),
            "is_valid": pd.Series(dtype="bool"), "reason": pd.Series(dtype="string"),
            "parsed_at": pd.Series(dtype="datetime64[us]")}))
    notes: list[str] = []
    columns = present_phone_columns_on(wh, rules.columns, None)
    columns += present_phone_columns_on(wh, declared_phone_columns(), notes)
    pairs = pd.DataFrame(columns=["phone_raw", "country_raw", "raw_rows"])
    if columns:
        pairs = wh.query(f"select phone_raw, country_raw, count(*) as raw_rows from "
                         f"({_pairs_sql_on(wh, columns)}) pairs group by phone_raw, country_raw")
    lookup = wh.query(f"select phone_raw, country_raw, is_valid from {relation}")
    raw_keys = set(zip(pairs["phone_raw"], pairs["country_raw"]))
    known = set(zip(lookup["phone_raw"], lookup["country_raw"]))
    gone = [key for key in known if key not in raw_keys]
    new = [key for key in zip(pairs["phone_raw"], pairs["country_raw"]) if key not in known]
    results = [normalise_phone(raw, country, rules) for raw, country in new]
    with wh.transaction():
        removed = wh.delete_keys(relation, pd.DataFrame(
            gone, columns=["phone_raw", "country_raw"], dtype=object)) if gone else 0
        if new:
            wh.append(relation, pd.DataFrame({
                "phone_raw": [raw for raw, _ in new],
                "country_raw": [country for _, country in new],
                "region": [region_of(country, rules) for _, country in new],
                "phone_e164": [r.phone_e164 for r in results],
                "is_valid": [r.is_valid for r in results],
                "reason": [r.reason for r in results],
                "parsed_at": pd.Timestamp(dt.datetime.now(dt.UTC).replace(tzinfo=None)),
            }))
    valid = {key: bool(v) for key, v in zip(zip(lookup["phone_raw"], lookup["country_raw"]),
                                            lookup["is_valid"])}
    valid.update({key: r.is_valid for key, r in zip(new, results)})
    invalid = [(key, int(n)) for key, n in zip(zip(pairs["phone_raw"], pairs["country_raw"]),
                                               pairs["raw_rows"]) if not valid.get(key, True)]
    for note in notes:
        _log.info(note)
    return PhoneReport(len(new), int(removed), len(invalid), sum(n for _, n in invalid),
                       tuple(notes))
