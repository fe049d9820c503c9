"""Input declarations (inputs/*.yml): the pydantic grammar, validation with file and field errors.

One YAML file declares one input: where its rows are (a landing export or a table already in the
warehouse), its record id and timestamp, which columns are identifiers of which type, which feed
survivorship, whether its records are timeline events and which consents it carries. The
declaration is the one home of those rules: the compiler (orchestration/inputs/compiler.py)
generates the input's dbt staging model and the `declared_inputs()` macro the identity graph,
survivorship, consents and timeline read; the loader, phone parsing and privacy read the
declarations through `load_inputs()`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orchestration.declarations import field_errors, read_yaml, template_problems, text_problem
from orchestration.settings import PROJECT_DIR

INPUTS_DIR_ENV = "CDP_INPUTS_DIR"
DEFAULT_INPUTS_DIR = PROJECT_DIR / "inputs"
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,40}$"
# The dbt source of a landing or relation input is `input_<name>`.
INPUT_SOURCE_PREFIX = "input_"
COLUMN_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
REGEX_FORBIDDEN = ("'", "\\")

ColumnType = Literal["text", "timestamp", "number", "integer"]


class Normalisation(str, Enum):
    """How an identifier column is staged (docs/sources.md, "What each normalisation does")."""

    EMAIL = "email"
    PHONE = "phone"
    ID = "id"
    REGEX = "regex"


class InputError(ValueError):
    """An input declaration is invalid; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Relation(_Strict):
    """A table already in the warehouse: read in place, never copied, never written."""

    database: str | None = None
    schema_: str = Field(alias="schema")
    table: str


class DbtSource(_Strict):
    """A dbt source the user's project already declares (its YAML stays theirs)."""

    source: str
    table: str


class From(_Strict):
    """Exactly one of: a landing export, a warehouse relation, an existing dbt source."""

    landing: str | None = None
    relation: Relation | None = None
    dbt_source: DbtSource | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> From:
        given = [k for k in ("landing", "relation", "dbt_source") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of landing (a file or folder in the landing "
                             "folder), relation (database.schema.table) or dbt_source; got "
                             + (", ".join(given) or "none"))
        return self


class NewType(_Strict):
    """Rules of an identifier type the project does not know yet (as in dbt var
    identity.identifier_types): lower priority is stronger."""

    priority: int = Field(ge=1, le=98)
    strong: bool = False
    max_per_customer: int | None = Field(default=None, ge=1)
    max_profiles: int | None = Field(default=2, ge=1)
    on_conflict: Literal["exclude"] | None = None


class Identifier(_Strict):
    """One identifier column: its type's normalisation, and for phones the country column."""

    column: str
    normalise: Normalisation | None = None
    pattern: str | None = None
    country: str | None = None
    new_type: NewType | None = None


class Events(_Strict):
    """Records of the input are timeline events: a fixed event type or a column holding it."""

    event_type: str | None = None
    event_type_column: str | None = None
    channel: str
    revenue: str | None = None
    # Records are purchases of this channel: they count as orders in features, LTV and KPIs
    # (int_transactions_identified), besides shop orders and store transactions.
    purchase: Literal["online", "store"] | None = None

    @model_validator(mode="after")
    def _one_event_type(self) -> Events:
        if (self.event_type is None) == (self.event_type_column is None):
            raise ValueError("give exactly one of event_type (a fixed name such as "
                             "lead_submitted) or event_type_column (the column holding it)")
        return self


class InputDeclaration(_Strict):
    """One input: a landing export or a warehouse table, and what its columns mean."""

    input: str = Field(pattern=NAME_PATTERN)
    description: str
    from_: From = Field(alias="from")
    record_id: str
    updated_at: str
    columns: dict[str, ColumnType] = Field(default_factory=dict)
    identifiers: dict[str, str | Identifier]
    attributes: dict[str, str] = Field(default_factory=dict)
    events: Events | None = None
    consents: dict[str, str] = Field(default_factory=dict)
    country: str | None = None

    @field_validator("identifiers")
    @classmethod
    def _some_identifier(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError("declare at least one identifier column (type: column)")
        return value

    # --- derived names (one place: the compiler, the loader and dbt use these) -------------
    @property
    def name(self) -> str:
        return self.input

    @property
    def model_name(self) -> str:
        """The generated staging model."""
        return f"stg_input__{self.input}"

    @property
    def dbt_source_name(self) -> str:
        """The dbt source the staging model reads (the user's own for `dbt_source`)."""
        if self.from_.dbt_source is not None:
            return self.from_.dbt_source.source
        return f"{INPUT_SOURCE_PREFIX}{self.input}"

    @property
    def dbt_source_table(self) -> str:
        if self.from_.dbt_source is not None:
            return self.from_.dbt_source.table
        if self.from_.relation is not None:
            return self.from_.relation.table
        return self.landing_name or self.input

    @property
    def landing_name(self) -> str | None:
        """The landing file/folder stem (and raw table name) of a landing input, else None."""
        return self.from_.landing

    @property
    def is_landing(self) -> bool:
        return self.from_.landing is not None

    def identifier_specs(self) -> dict[str, Identifier]:
        """Every identifier as a full spec, normalisation defaulted from its type."""
        specs = {}
        for identifier_type, spec in self.identifiers.items():
            full = Identifier(column=spec) if isinstance(spec, str) else spec
            if full.normalise is None:  # a type named like a normalisation (email, phone) has it
                kinds = {kind.value for kind in Normalisation} - {Normalisation.REGEX.value}
                default = identifier_type if identifier_type in kinds else Normalisation.ID.value
                full = full.model_copy(update={"normalise": default})
            specs[identifier_type] = full
        return specs

    def column_types(self) -> dict[str, ColumnType]:
        """Types of every referenced column: declared, else timestamp for `updated_at`, number
        for revenue, text otherwise."""
        types: dict[str, ColumnType] = {column: "text" for column in self.referenced_columns()}
        types[self.updated_at] = "timestamp"
        if self.events is not None and self.events.revenue:
            types[self.events.revenue] = "number"
        types.update(self.columns)
        return types

    def referenced_columns(self) -> tuple[str, ...]:
        """Every source column the declaration names, in declaration order, once each."""
        names: list[str] = [self.record_id, self.updated_at]
        for spec in self.identifier_specs().values():
            names += [spec.column] + ([spec.country] if spec.country else [])
        names += list(self.attributes.values()) + list(self.consents.values())
        if self.events is not None:
            names += [c for c in (self.events.event_type_column, self.events.revenue) if c]
        if self.country:
            names.append(self.country)
        names += list(self.columns)
        return tuple(dict.fromkeys(names))

    def phone_columns(self) -> list[dict[str, str]]:
        """Raw phone columns, with their country column, for the libphonenumber lookup
        (the shape of dbt var phone_numbers.sources)."""
        found = []
        for spec in self.identifier_specs().values():
            if spec.normalise == "phone":
                country = spec.country or self.country
                found.append({"phone": spec.column, **({"country": country} if country else {})})
        return found

    def staged_column(self, attribute: str) -> str:
        """The staging model's column an attribute survives from: the identifier's normalised
        column when the attribute reads an identifier column, else the attribute's own name."""
        column = self.attributes[attribute]
        for identifier_type, spec in self.identifier_specs().items():
            if spec.column == column:
                return identifier_type
        return attribute

    def landing_source(self) -> Any:
        """The loader's LandingSource of a landing input (raw.<landing name>, every referenced
        column required, typed as column_types()), or None for a warehouse input."""
        from orchestration.ingestion.contract import LandingSource

        if self.landing_name is None:
            return None
        types = {c: t for c, t in self.column_types().items() if t != "text"}
        return LandingSource(name=self.landing_name, dbt_source=self.dbt_source_name,
                             record_id=self.record_id, required=self.referenced_columns(),
                             types=types, description=" ".join(self.description.split()))

    def dbt_entry(self) -> dict[str, Any]:
        """What the generated `declared_inputs()` macro returns for this input: the shape of an
        entry of dbt var identity.sources, over the staging model's standard column names
        (record_id, occurred_at, one column per identifier type, attributes, event_type,
        channel, revenue, consent_<purpose>, loaded_at). `events.purchase` is the purchase
        channel (online/store) when the records are purchases, else None."""
        specs = self.identifier_specs()
        entry: dict[str, Any] = {
            "source": self.input,
            "model": self.model_name,
            "record_id": "record_id",
            "seen_at": "occurred_at",
            "identifiers": {identifier_type: identifier_type for identifier_type in specs},
            "attributes": {attribute: self.staged_column(attribute)
                           for attribute in self.attributes},
            "identifier_types": {identifier_type: spec.new_type.model_dump()
                                 for identifier_type, spec in specs.items() if spec.new_type},
            "events": None,
            "consents": {purpose: f"consent_{purpose}" for purpose in self.consents},
        }
        if self.events is not None:
            entry["events"] = {"event_type": "event_type", "channel": "channel",
                               "revenue": "revenue" if self.events.revenue else None,
                               "purchase": self.events.purchase}
        return entry


@dataclass(frozen=True)
class LoadedInput:
    """A valid declaration and the file it came from."""

    declaration: InputDeclaration
    path: Path


def inputs_dir() -> Path:
    """CDP_INPUTS_DIR (relative paths from the project), else <project>/inputs."""
    value = os.environ.get(INPUTS_DIR_ENV, "").strip()
    if not value:
        return DEFAULT_INPUTS_DIR
    path = Path(value).expanduser()
    return path if path.is_absolute() else (PROJECT_DIR / path)


def _project_rules() -> tuple[set[str], set[str], set[str], set[str]]:
    """Identifier types, survivorship attributes, consent purposes and built-in landing
    sources the project defines (dbt vars, the consent seed, the landing contract)."""
    from orchestration.catalog import dbt_var
    from orchestration.ingestion.contract import SOURCES
    from orchestration.segments import consent_purposes

    types = set((dbt_var("identity.identifier_types", {}) or {}).keys())
    attributes = set((dbt_var("survivorship", {}) or {}).keys())
    return types, attributes, consent_purposes(), {source.name for source in SOURCES}


# Words an input name may not be: the models use input names as CTE names (`<input> as (...)`).
SQL_WORDS = frozenset({"all", "and", "as", "by", "case", "cast", "create", "cross", "default",
                       "delete", "distinct", "else", "end", "except", "false", "from", "full",
                       "group", "having", "in", "inner", "insert", "intersect", "into", "is",
                       "join", "left", "like", "limit", "not", "null", "on", "or", "order",
                       "outer", "over", "right", "select", "table", "then", "true", "union",
                       "update", "user", "using", "values", "when", "where", "window", "with"})
_CTE = re.compile(r"^\s*,?\s*([a-z_][a-z0-9_]*) as \(", re.MULTILINE)


def reserved_names(models_dir: Path | None = None) -> frozenset[str]:
    """CTE names the project's models use (found in their SQL, generated inputs excluded) and
    SQL words: an input of such a name would collide where the models add it as a CTE."""
    models_dir = models_dir or PROJECT_DIR / "models"
    inputs_models = models_dir / "staging" / "inputs"
    names: set[str] = set()
    for path in models_dir.rglob("*.sql"):
        if inputs_models in path.parents:
            continue
        names.update(_CTE.findall(path.read_text().lower()))
    return frozenset(names) | SQL_WORDS


def _semantic_problems(decl: InputDeclaration, known_types: set[str], attributes: set[str],
                       purposes: set[str], builtin: set[str],
                       reserved: frozenset[str]) -> list[str]:
    problems: list[str] = []
    columns = decl.referenced_columns()
    for column in columns:
        if not re.match(COLUMN_PATTERN, column):
            problems.append(f"column {column!r}: not a plain column name (letters, digits, _)")
    if decl.input in reserved:
        problems.append(f"input: {decl.input!r} is a name the models already use (a CTE or an "
                        f"SQL word); choose another, e.g. {decl.input}_export")
    if decl.input in builtin or (decl.landing_name or "") in builtin:
        problems.append(f"input: {decl.input!r} is a built-in landing source; choose another "
                        "name (built-in sources are declared in the landing contract)")
    relation = decl.from_.relation or decl.from_.dbt_source
    if relation is not None:
        for label, value in relation.model_dump(by_alias=True).items():
            if value is not None and not re.match(COLUMN_PATTERN, value):
                problems.append(f"from.{label}: {value!r} is not a plain name (letters, digits, _)")
    if decl.landing_name is not None and not re.match(NAME_PATTERN, decl.landing_name):
        problems.append(f"from.landing: {decl.landing_name!r} must be a lowercase file stem "
                        "(letters, digits, _)")
    for identifier_type, spec in decl.identifier_specs().items():
        field = f"identifiers.{identifier_type}"
        if not re.match(NAME_PATTERN, identifier_type):
            problems.append(f"{field}: identifier type names are lowercase (letters, digits, _)")
        if identifier_type in known_types and spec.new_type is not None:
            problems.append(f"{field}.new_type: {identifier_type!r} is already a type of dbt var "
                            "identity.identifier_types; remove new_type")
        if identifier_type not in known_types and spec.new_type is None:
            problems.append(f"{field}: unknown identifier type {identifier_type!r}; known: "
                            f"{', '.join(sorted(known_types))}; a new type needs `new_type:` "
                            "(priority, strong, max_per_customer, max_profiles)")
        if spec.normalise == "regex":
            if not spec.pattern:
                problems.append(f"{field}.pattern: normalise: regex needs a pattern")
            elif any(c in spec.pattern for c in REGEX_FORBIDDEN):
                problems.append(f"{field}.pattern: no quote or backslash (use [.] and [0-9])")
            else:
                try:
                    re.compile(spec.pattern)
                except re.error as exc:
                    problems.append(f"{field}.pattern: not a regular expression: {exc}")
        elif spec.pattern is not None:
            problems.append(f"{field}.pattern: only for normalise: regex")
        if spec.country is not None and spec.normalise != "phone":
            problems.append(f"{field}.country: only phone identifiers have a country column")
    for attribute in decl.attributes:
        if attribute not in attributes:
            problems.append(f"attributes.{attribute}: unknown attribute; survivorship chooses "
                            f"{', '.join(sorted(attributes))} (dbt var survivorship)")
    for purpose in decl.consents:
        if purpose not in purposes:
            problems.append(f"consents.{purpose}: unknown purpose; known: "
                            f"{', '.join(sorted(purposes))} (seeds/consent_purposes.csv)")
    if decl.events is not None:
        for label, value in (("events.event_type", decl.events.event_type),
                             ("events.channel", decl.events.channel)):
            if value is not None and not re.match(NAME_PATTERN, value):
                problems.append(f"{label}: {value!r} must be lowercase letters, digits and _")
    for text in (decl.description,):
        problem = text_problem(" ".join(text.split()))
        if problem:
            problems.append(f"description: {problem}")
    return problems


def validate_inputs(paths: list[Path] | None = None) -> tuple[list[LoadedInput], list[str]]:
    """Every declaration of inputs_dir()/*.yml (or `paths`) validated against the project's
    identifier types, attributes and purposes, in one pass: the valid ones (a name declared
    again is kept from its first valid file only) and every problem, each `<file>: <field>: <problem>`.
    An invalid file does not hide the others."""
    if paths is None:
        directory = inputs_dir()
        paths = sorted(directory.glob("*.yml")) + sorted(directory.glob("*.yaml"))
    known_types, attributes, purposes, builtin = _project_rules()
    reserved = reserved_names()
    errors: list[str] = []
    loaded: list[LoadedInput] = []
    seen: dict[str, Path] = {}
    kept: set[str] = set()
    for path in paths:
        raw, unreadable = read_yaml(path)
        if unreadable:
            errors.append(unreadable)
            continue
        if not isinstance(raw, dict):
            errors.append(f"{path}: expected a mapping (input:, description:, from:, ...)")
            continue
        unsafe = template_problems(raw)
        if unsafe:
            errors.extend(f"{path}: {message}" for message in unsafe)
            continue
        try:
            decl = InputDeclaration.model_validate(raw)
        except ValidationError as exc:
            errors.extend(f"{path}: {message}" for message in field_errors(exc))
            continue
        problems = _semantic_problems(decl, known_types, attributes, purposes, builtin, reserved)
        errors.extend(f"{path}: {message}" for message in problems)
        if decl.input in seen:
            errors.append(f"{path}: input: {decl.input!r} is already declared in "
                          f"{seen[decl.input]}")
        seen[decl.input] = path
        if not problems and decl.input not in kept:
            kept.add(decl.input)
            loaded.append(LoadedInput(declaration=decl, path=path))
    return loaded, errors


def load_inputs(paths: list[Path] | None = None) -> list[LoadedInput]:
    """`validate_inputs`, raising InputError listing every problem when there is one."""
    loaded, errors = validate_inputs(paths)
    if errors:
        raise InputError("invalid input declarations:\n  " + "\n  ".join(errors))
    return loaded


def declared_inputs() -> list[InputDeclaration]:
    """The valid declarations of inputs_dir(), for the loader, phones and privacy."""
    return [item.declaration for item in load_inputs()]
