"""Sync declarations (activation/syncs.yml) as pydantic models, with errors naming file and field."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orchestration.catalog import catalog
from orchestration.declarations import sql_literal, template_problems
from orchestration.activation.sources import declared_segments
from orchestration.experiments import ExperimentConfig
from orchestration.settings import PROJECT_DIR

DEFAULT_CONFIG_PATH = PROJECT_DIR / "activation" / "syncs.yml"
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
RELATION = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$"
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Mode = Literal["upsert", "update_only", "insert_only", "mirror", "audience"]
Transform = Literal["lower", "upper", "trim", "string", "iso_date"]


class ConfigError(ValueError):
    """A sync configuration file that is missing, unreadable or invalid."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldSpec(Strict):
    """One destination field: a source column (optionally transformed), a constant, or a consent status."""

    column: Annotated[str, Field(pattern=IDENTIFIER)] | None = None
    transform: Transform | None = None
    constant: str | int | float | bool | None = None
    consent_status: Annotated[str, Field(pattern=IDENTIFIER)] | None = None

    @model_validator(mode="after")
    def exactly_one_source(self) -> "FieldSpec":
        given = [self.column is not None, "constant" in self.model_fields_set,
                 self.consent_status is not None]
        if sum(given) != 1:
            raise ValueError("give exactly one of column, constant or consent_status")
        if self.transform is not None and self.column is None:
            raise ValueError("transform applies to a column only")
        return self


class RetryConfig(Strict):
    max_attempts: int = Field(6, ge=1, le=50)
    initial_backoff_seconds: float = Field(0.5, ge=0)
    max_backoff_seconds: float = Field(60.0, ge=0)


class EnvSecret(Strict):
    """A header whose value is read from an environment variable at run time (never stored in YAML)."""

    header: str = "Authorization"
    env: Annotated[str, Field(pattern=IDENTIFIER)]
    prefix: str = ""


class HmacConfig(Strict):
    secret_env: Annotated[str, Field(pattern=IDENTIFIER)]
    header: str = "X-CDP-Signature"


class PostgresDestination(Strict):
    type: Literal["postgres"]
    dsn: str | None = None
    dsn_env: Annotated[str, Field(pattern=IDENTIFIER)] | None = None
    schema_name: Annotated[str, Field(pattern=IDENTIFIER, alias="schema")] = "public"
    table: Annotated[str, Field(pattern=IDENTIFIER)]
    key_field: Annotated[str, Field(pattern=IDENTIFIER)] | None = None
    connect_timeout_seconds: int = Field(10, ge=1)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def one_dsn(self) -> "PostgresDestination":
        if (self.dsn is None) == (self.dsn_env is None):
            raise ValueError("give exactly one of dsn or dsn_env")
        return self


class HttpDestination(Strict):
    type: Literal["http"]
    url: Annotated[str, Field(pattern=r"^https?://")]
    headers: dict[str, str] = {}
    auth: EnvSecret | None = None
    hmac: HmacConfig | None = None
    idempotency_header: str = "Idempotency-Key"
    timeout_seconds: float = Field(30.0, gt=0)


class FilesDestination(Strict):
    type: Literal["files"]
    url: str = Field(min_length=1, description="local folder or any fsspec URL")
    format: Literal["csv", "parquet", "jsonl"] = "jsonl"


class AdAudienceDestination(Strict):
    type: Literal["ad_audience"]
    platform: Literal["google_customer_match", "google_data_manager", "meta", "uid2"]
    url: str = Field(min_length=1, description="folder (or fsspec URL) receiving add/remove files")
    audience: Annotated[str, Field(pattern=IDENTIFIER)]
    email_field: str | None = "email"
    phone_field: str | None = "phone"
    default_country_code: Annotated[str, Field(pattern=r"^[1-9][0-9]{0,2}$")] | None = None
    consent_fields: list[str] = ["ad_user_data", "ad_personalization"]


class HubspotDestination(Strict):
    type: Literal["hubspot"]
    base_url: Annotated[str, Field(pattern=r"^https?://")] = "https://api.hubapi.com"
    object_type: Annotated[str, Field(pattern=IDENTIFIER)] = "contacts"
    id_property: Annotated[str, Field(pattern=IDENTIFIER)] = "email"
    token_env: Annotated[str, Field(pattern=IDENTIFIER)] = "HUBSPOT_TOKEN"
    timeout_seconds: float = Field(30.0, gt=0)
    on_remove_properties: dict[str, str] = {}


Destination = Annotated[
    PostgresDestination | HttpDestination | FilesDestination | AdAudienceDestination
    | HubspotDestination,
    Field(discriminator="type"),
]


class SegmentSource(Strict):
    """`source: {segment: <name>}`: the current members of a declared segment (marts
    segment_memberships) with their fields from marts customers."""

    segment: Annotated[str, Field(pattern=IDENTIFIER)]


class SyncConfig(Strict):
    name: Annotated[str, Field(pattern=IDENTIFIER)]
    description: str = ""
    enabled: bool = True
    requires_env: list[str] = Field(default_factory=list,
                                    description="skip the sync unless these env vars are set")
    source: Annotated[str, Field(pattern=RELATION)] | SegmentSource
    source_asset: str | None = Field(None, description="upstream Dagster asset key, parts joined by /")
    filter: str | None = None
    primary_key: list[Annotated[str, Field(pattern=IDENTIFIER)]] = Field(min_length=1)
    mode: Mode = "upsert"
    fields: dict[str, FieldSpec] = Field(min_length=1)
    consent_purposes: list[Annotated[str, Field(pattern=IDENTIFIER)]] = []
    consent_key: Annotated[str, Field(pattern=IDENTIFIER)] = "customer_id"
    schedule: str | None = None
    batch_size: int = Field(1000, ge=1, le=1_000_000)
    rate_limit_per_second: float | None = Field(None, gt=0)
    retry: RetryConfig = RetryConfig()
    max_failed_ratio: float = Field(0.5, ge=0, le=1)
    destination: Destination
    experiment: ExperimentConfig | None = None

    @field_validator("filter")
    @classmethod
    def one_expression(cls, value: str | None) -> str | None:
        if value is not None:
            check_filter(value)
        return value

    @field_validator("primary_key", "consent_purposes", mode="before")
    @classmethod
    def listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("fields", mode="before")
    @classmethod
    def column_shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"column": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("fields")
    @classmethod
    def field_names(cls, value: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        for name in value:
            if not re.match(IDENTIFIER, name):
                raise ValueError(f"destination field name {name!r} must match {IDENTIFIER}")
        return value

    @model_validator(mode="after")
    def destination_fits(self) -> "SyncConfig":
        dest = self.destination
        if isinstance(dest, PostgresDestination) and self.key_field not in self.fields:
            raise ValueError(f"destination.key_field {self.key_field!r} must be one of fields")
        if isinstance(dest, HubspotDestination):
            if self.mode not in ("upsert", "update_only"):
                raise ValueError("hubspot destination supports mode upsert or update_only")
            if dest.id_property not in self.fields:
                raise ValueError(f"hubspot id_property {dest.id_property!r} must be one of fields")
        if isinstance(dest, AdAudienceDestination):
            named = [f for f in (dest.email_field, dest.phone_field) if f]
            if not named or any(f not in self.fields for f in named):
                raise ValueError("ad_audience email_field/phone_field must be among fields")
        if self.experiment is not None:
            if self.primary_key != [self.consent_key]:
                raise ValueError(f"an experiment assigns customers: primary_key must be "
                                 f"[{self.consent_key}] (the sync's consent_key)")
            named = self.experiment.variant_field
            if named is not None and named in self.fields:
                raise ValueError(f"experiment.variant_field {named!r} is already a field")
        return self

    @property
    def segment(self) -> str | None:
        return self.source.segment if isinstance(self.source, SegmentSource) else None

    @property
    def source_label(self) -> str:
        return f"segment {self.segment}" if self.segment else str(self.source)

    @property
    def key_field(self) -> str:
        dest = self.destination
        if isinstance(dest, PostgresDestination) and dest.key_field:
            return dest.key_field
        return self.primary_key[0]

    @property
    def removal_fields(self) -> list[str]:
        """The fields a removal carries besides the key: only what the destination needs to find
        the record (PostgreSQL key column, HubSpot id property, ad-audience match keys, which
        the destination hashes). Webhooks and files get the key alone."""
        dest = self.destination
        if isinstance(dest, PostgresDestination):
            return [self.key_field]
        if isinstance(dest, HubspotDestination):
            return [dest.id_property]
        if isinstance(dest, AdAudienceDestination):
            return [f for f in (dest.email_field, dest.phone_field) if f]
        return []

    def source_relation(self) -> str:
        """`schema.table` the sync reads: `source` as written when it names a schema, else the dbt
        model of that name as the target builds it (`customers` is `main_marts.customers` on DuckDB,
        `public_marts.customers` on PostgreSQL), looked up in the catalog when the sync runs.
        A segment source reads `customers` (joined to segment_memberships by the engine)."""
        if isinstance(self.source, SegmentSource):
            return catalog().relation("customers")
        return self.source if "." in self.source else catalog().relation(self.source)

    @property
    def source_asset_key(self) -> str:
        if isinstance(self.source, SegmentSource):
            return self.source_asset or "segment_memberships"
        return self.source_asset or self.source.split(".")[-1]

    @property
    def is_active(self) -> bool:
        return self.enabled and all(os.environ.get(var) for var in self.requires_env)


class ActivationConfig(Strict):
    # None: the dbt model customer_consents, looked up in the catalog when a sync runs.
    consent_relation: Annotated[str | None, Field(pattern=RELATION)] = None
    log_retention_days: int = Field(90, ge=1)
    syncs: list[SyncConfig] = []

    def consents(self) -> str:
        """The relation syncs read consent from: `consent_relation`, else dbt's customer_consents."""
        if self.consent_relation:
            return self.consent_relation
        return catalog().relation("customer_consents")

    @model_validator(mode="after")
    def unique_names(self) -> "ActivationConfig":
        names = [s.name for s in self.syncs]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"sync names must be unique, repeated: {duplicated}")
        return self

    def sync(self, name: str) -> SyncConfig:
        for sync in self.syncs:
            if sync.name == name:
                return sync
        raise KeyError(f"no sync named {name!r}")


def check_filter(text: str) -> None:
    """A sync `filter:` must be one boolean expression over the source: no second statement,
    no closing the `where (...)` it is wrapped in, no comment hiding the rest."""
    import duckdb

    depth, quoted, previous = 0, False, ""
    for char in text:
        if char == "'":
            quoted = not quoted
        elif not quoted and (char in "();" or previous + char in ("--", "/*")):
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth < 0 or char not in "()":
                raise ValueError("must be one expression (unbalanced parenthesis, ';' or a "
                                 "comment)")
        previous = char
    if quoted or depth:
        raise ValueError("must be one expression (an open quote or parenthesis)")
    try:
        statements = duckdb.extract_statements(f"select 1 where ({text})")
    except duckdb.Error as exc:
        raise ValueError(f"is not a SQL expression: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise ValueError("must be one expression")


def _env_value(match: re.Match[str]) -> str:
    return os.environ.get(match.group(1), match.group(2) or "")


def _filter_literal(match: re.Match[str]) -> str:
    """${VAR} in a filter: the value as a typed SQL literal (a number stays a number, anything
    else becomes an escaped string), never SQL text; unset without a default is an error."""
    value = os.environ.get(match.group(1), match.group(2))
    if value is None:
        raise ConfigError(f"filter: ${{{match.group(1)}}} is not set and has no default "
                          f"(write ${{{match.group(1)}:-value}})")
    if re.fullmatch(r"-?[0-9]{1,18}", value):
        return str(int(value))
    if re.fullmatch(r"-?[0-9]+\.[0-9]+", value):
        return repr(float(value))
    try:
        return sql_literal(value)
    except ValueError as exc:
        raise ConfigError(f"filter: ${{{match.group(1)}}}: {exc}") from None


def _expand_env(value: Any, path: str = "") -> Any:
    """Replace ${VAR} and ${VAR:-default} in strings (unset without default: left empty); in a
    sync `filter:` each reference becomes a SQL literal (`_filter_literal`)."""
    if isinstance(value, str):
        if not path.endswith(".filter"):
            return ENV_REFERENCE.sub(_env_value, value)
        try:
            return ENV_REFERENCE.sub(_filter_literal, value)
        except ConfigError as exc:
            raise ConfigError(f"{path.lstrip('.')}{str(exc).removeprefix('filter')}") from None
    if isinstance(value, list):
        named = [f"[{i}]" + (f" ({v['name']})" if isinstance(v, dict) and isinstance(
            v.get("name"), str) else "") for i, v in enumerate(value)]
        return [_expand_env(v, path + label) for v, label in zip(value, named)]
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{path}.{k}") for k, v in value.items()}
    return value


DESTINATION_TYPES = ("postgres", "http", "files", "ad_audience", "hubspot")


def _location(raw: Any, loc: tuple[Any, ...]) -> str:
    """Name a pydantic error location like `syncs[0] (customers_to_crm).destination.table`."""
    parts: list[str] = []
    node = raw
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and item < len(node):
                node = node[item]
                if isinstance(node, dict) and node.get("name"):
                    label += f" ({node['name']})"
            parts.append(label)
        elif isinstance(node, dict) and item in node:
            node = node[item]
            parts.append(f".{item}")
        elif item in DESTINATION_TYPES or str(item).startswith("function-"):
            continue  # pydantic's discriminator tag or validator kind, not a field
        else:
            parts.append(f".{item}")
    return "".join(parts).lstrip(".") or "(top level)"


def _expanded(raw: dict[str, Any], source: str) -> Any:
    try:
        return _expand_env(raw)
    except ConfigError as exc:
        raise ConfigError(f"{source}: invalid activation config\n  {source}: {exc}") from None


def _segment_problems(config: ActivationConfig, source: str) -> list[str]:
    wanted = [(i, s) for i, s in enumerate(config.syncs) if s.segment]
    known = declared_segments() if wanted else None
    if known is None:
        return []
    return [f"{source}: syncs[{i}] ({s.name}).source.segment: unknown segment {s.segment!r}; "
            f"declared: {', '.join(sorted(known))}" for i, s in wanted if s.segment not in known]


def parse_config(raw: Any, source: str) -> ActivationConfig:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping with a `syncs:` list at the top level")
    unsafe = template_problems(_expanded(raw, source))
    if unsafe:
        raise ConfigError("\n".join([f"{source}: invalid activation config"]
                                    + [f"  {source}: {problem}" for problem in unsafe]))
    expanded = _expanded(raw, source)
    try:
        config = ActivationConfig.model_validate(expanded)
    except ValidationError as exc:
        lines = [f"{source}: invalid activation config"]
        for error in exc.errors():
            lines.append(f"  {source}: {_location(raw, tuple(error['loc']))}: {error['msg']}")
        raise ConfigError("\n".join(lines)) from None
    unknown = _segment_problems(config, source)
    if unknown:
        raise ConfigError("\n".join([f"{source}: invalid activation config"]
                                    + [f"  {problem}" for problem in unknown]))
    return config


def load_config(path: str | Path | None = None) -> ActivationConfig:
    """Read and validate a sync file (default: activation/syncs.yml, or CDP_ACTIVATION_CONFIG)."""
    path = Path(path or os.environ.get("CDP_ACTIVATION_CONFIG") or DEFAULT_CONFIG_PATH)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read activation config: {exc.strerror}") from None
    return parse_config(_yaml(text, path), str(path))


def _yaml(text: str, path: Path) -> Any:
    """The parsed YAML; a syntax error names the file and the line (and column) it is on."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else f"{path}"
        problem = " ".join(str(part) for part in (getattr(exc, "context", None),
                                                  getattr(exc, "problem", None)) if part)
        raise ConfigError(f"{where}: not valid YAML: {problem or exc}") from None


def _broken_name(entry: Any, index: int) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    if isinstance(name, str) and re.match(IDENTIFIER, name) and len(name) <= 100:
        return name
    return f"invalid_sync_{index}"


# The asset standing for a sync file that cannot be read at all (unreadable, a YAML syntax
# error, an invalid top level): it fails with the file-level error, the rest still loads.
INVALID_FILE_NAME = "syncs_file_invalid"


def load_config_by_sync(path: str | Path | None = None
                        ) -> tuple[ActivationConfig, dict[str, str]]:
    """Like `load_config`, but never raises: a sync whose declaration is invalid is set aside
    with its error (by sync name), so it fails only its own asset; a file that cannot be read
    as a whole (unreadable, YAML syntax error, invalid top level) yields no sync and one error
    under INVALID_FILE_NAME, naming the file and line."""
    try:
        return load_config(path), {}
    except ConfigError as exc:
        file_error = str(exc)
    path = Path(path or os.environ.get("CDP_ACTIVATION_CONFIG") or DEFAULT_CONFIG_PATH)
    try:
        return _load_each_sync(path)
    except (ConfigError, OSError, yaml.YAMLError):
        return ActivationConfig(), {INVALID_FILE_NAME: file_error}


def _load_each_sync(path: Path) -> tuple[ActivationConfig, dict[str, str]]:
    """Validate each sync of a readable file alone; raises on a file-level problem."""
    raw = _yaml(path.read_text(), path)
    if not isinstance(raw, dict) or not isinstance(raw.get("syncs"), list):
        raise ConfigError(f"{path}: expected a `syncs:` list")
    top = {k: v for k, v in raw.items() if k != "syncs"}
    parse_config({**top, "syncs": []}, str(path))  # an invalid top level fails the file
    valid: list[Any] = []
    broken: dict[str, str] = {}
    for index, entry in enumerate(raw["syncs"]):
        try:
            parse_config({**top, "syncs": [entry]}, str(path))
            valid.append(entry)
        except ConfigError as exc:  # validated alone, so its location reads syncs[0]
            broken[_broken_name(entry, index)] = str(exc).replace(
                f"{path}: syncs[0]", f"{path}: syncs[{index}]")
    return parse_config({**top, "syncs": valid}, str(path)), broken
