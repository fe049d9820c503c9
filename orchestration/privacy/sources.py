"""Where identifiers live: the identity sources of dbt and the declared inputs, their staging
views and raw tables (or, for a declared warehouse input, the user's own relation)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestration.catalog import Catalog, CatalogError, catalog, load_catalog
from orchestration.ingestion.contract import (
    SOURCES_BY_NAME, declared_inputs_or_problems, landing_source_named, warehouse_input_relation,
)
from orchestration.privacy.audit import SCHEMA
from orchestration.privacy.sql import text
from orchestration.warehouse.base import Warehouse

# Raw tables whose rows must stay for accounting: their identifier columns (those dbt declares,
# `raw_identifier_columns`) are nulled, not deleted.
KEPT_FOR_ACCOUNTING = frozenset({"shop_orders", "pos_transactions"})
# The source the privacy requests arrive in (never erased as data: its identifiers are hashed).
REQUEST_SOURCE = ("privacy", "privacy_requests")
# The loader's table of rejected lines, in the raw schema (orchestration/ingestion.py).
LOAD_REJECTS_TABLE = "_load_rejects"
# The phone lookup the loader keeps in the raw schema (orchestration/phones.py).
PHONE_LOOKUP = ("phone", "_phone_numbers")
# What an erasure reports for a declared warehouse input (relation, dbt_source): the CDP never
# deletes from the user's own table; suppressed identifiers never enter the identity graph.
OWNED_OUTSIDE = "owned_outside_cdp"
OWNED_OUTSIDE_DETAIL = ("owned outside the CDP: erase there (the CDP never deletes from it; its "
                        "rows stop linking: suppressed identifiers never enter the graph)")


@dataclass(frozen=True)
class IdentifiedSource:
    """A landing source, its staging model and the staged columns that hold identifiers."""

    source: str
    staging_model: str
    staging_record_id: str
    identifier_columns: tuple[str, ...]
    raw_record_id_template: str  # SQL of the raw record id, `{string}` the engine's text type
    raw_table: str  # schema.table of the raw rows (from the dbt source)
    staging_relation: str  # schema.view of the staged rows (from the dbt model)
    # declared inputs: the raw table's name in the loader's rejects (its landing name), the raw
    # columns holding identifiers (matched lower-cased when the staging view is not built yet),
    # and whether `raw_table` is the user's own relation (never deleted from, only reported)
    landing_name: str = ""
    raw_identifiers: tuple[str, ...] = ()
    owned_outside: bool = False

    @property
    def raw_record_id_sql(self) -> str:
        """The raw record id's SQL on DuckDB."""
        return self.raw_record_id_template.format(string="varchar")

    def raw_record_id(self, wh: Warehouse) -> str:
        """The raw record id as text, in the SQL of `wh`'s engine."""
        return text(wh, self.raw_record_id_template.format(string=wh.sql_type("string")))


def _catalog(project_file: Path | None) -> Catalog:
    return load_catalog(project_file=project_file) if project_file else catalog()


def identified_sources(project_file: Path | None = None) -> list[IdentifiedSource]:
    """From dbt var `identity.sources` (dbt_project.yml), the manifest and the landing contract."""
    cat = _catalog(project_file)
    found = []
    for entry in cat.var("identity.sources"):
        name = entry["source"]
        columns = tuple(entry.get("identifiers", {}).values())
        if entry.get("identifier_value_column"):
            columns += (entry["identifier_value_column"],)
        contract = SOURCES_BY_NAME[name]
        raw_id = contract.record_id  # plain names (the landing contract's)
        if name == "consents":  # stg_consent__consents: a hash of file and line when missing
            raw_id = ("coalesce(consent_id, md5(_source_file || ':' || "
                      "cast(_source_line as {string})))")
        found.append(IdentifiedSource(
            name, entry["model"], entry["record_id"], tuple(dict.fromkeys(columns)), raw_id,
            cat.source(contract.dbt_source, name), cat.relation(entry["model"])))
    listed = {source.source for source in found}
    return found + [s for s in declared_sources(cat) if s.source not in listed]


def _staging_relation(cat: Catalog, model: str) -> str:
    """The staging view of a declared input: from the manifest once the compiler generated it,
    else where it will be (beside the built-in staging views)."""
    try:
        return cat.relation(model)
    except CatalogError:
        built_in = cat.var("identity.sources")[0]["model"]
        return f"{cat.schema_of(built_in)}.{model}"


def declared_sources(cat: Catalog | None = None) -> list[IdentifiedSource]:
    """The valid declared inputs (inputs/*.yml) as identified sources: a landing input's raw
    table (raw.<landing name>), a warehouse input's own relation flagged `owned_outside`."""
    from orchestration.ingestion.schema import raw_table

    cat = cat or catalog()
    found = []
    for decl in declared_inputs_or_problems()[0]:
        specs = decl.identifier_specs()
        raw_columns = tuple(dict.fromkeys(spec.column for spec in specs.values()))
        relation = (raw_table(decl.landing_source()) if decl.is_landing
                    else warehouse_input_relation(decl))
        if relation is None:  # a dbt source the manifest does not know yet: nothing to reach
            continue
        # a record id that is an identifier (an email) is personal: matched like one
        staged = tuple(specs) + (("record_id",) if decl.record_id in raw_columns else ())
        found.append(IdentifiedSource(
            decl.input, decl.model_name, "record_id", staged, decl.record_id, relation,
            _staging_relation(cat, decl.model_name), landing_name=decl.landing_name or "",
            raw_identifiers=raw_columns, owned_outside=not decl.is_landing))
    return found


def owned_outside_relations() -> frozenset[tuple[str, str]]:
    """(schema, table) of the declared warehouse inputs' own relations, lower-cased: never
    scrubbed as derived data."""
    return frozenset(tuple(s.raw_table.lower().split(".")[-2:])  # type: ignore[misc]
                     for s in declared_sources() if s.owned_outside)


def raw_schema() -> str:
    """The schema of the raw landing tables (the dbt sources' schema)."""
    return catalog().source_schema(REQUEST_SOURCE[0])


def request_table() -> str:
    """The raw table of privacy requests."""
    return catalog().source(*REQUEST_SOURCE)


def load_rejects() -> str:
    return f"{raw_schema()}.{LOAD_REJECTS_TABLE}"


def phone_lookup() -> str:
    return catalog().source(*PHONE_LOOKUP)


def not_derived_schemas() -> tuple[str, ...]:
    """Schemas never scrubbed as derived data: raw is erased row by row, privacy is the audit."""
    return (raw_schema(), SCHEMA, "information_schema", "pg_catalog")


def raw_identifier_columns(source_name: str) -> tuple[str, ...]:
    """Raw columns of a landing source that carry identifiers, as dbt declares them.

    The staged identifier columns of `identity.sources` that the raw table has under the same
    name, and the raw columns marked `meta: {pii: true}` in the source YAML that staging renames
    (support's requester_email becomes email)."""
    cat = catalog()
    declared = next((s for s in declared_sources(cat)
                     if not s.owned_outside and source_name in (s.source, s.landing_name)), None)
    if source_name not in SOURCES_BY_NAME and declared is not None:
        return declared.raw_identifiers  # the declaration says which raw columns they are
    contract = landing_source_named(source_name)
    entry = next((e for e in cat.var("identity.sources") if e["source"] == source_name), None)
    if entry is None:
        return ()
    staged = set(entry.get("identifiers", {}).values())
    if entry.get("identifier_value_column"):
        staged.add(entry["identifier_value_column"])
    staged_columns = set(cat.columns(entry["model"]))
    renamed_pii = {name for name, column in cat.source_columns(contract.dbt_source,
                                                                source_name).items()
                   if column.get("meta", {}).get("pii") and name not in staged_columns}
    return tuple(c for c in contract.known_columns if c in staged or c in renamed_pii)
