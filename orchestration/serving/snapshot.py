"""The serving snapshot: a small DuckDB file, built from the warehouse, that the profile API reads.

The warehouse is the dbt target (CDP_DBT_TARGET). On DuckDB the snapshot is assembled by the
warehouse's own session; on PostgreSQL and Spark the relations it reads (the recent events only)
are read through the warehouse interface into an in-memory DuckDB database first, and the same
statements assemble the file from there. The snapshot stays a local DuckDB file either way: it
is the API's read model, not the warehouse.

Unlike the BI publication (orchestration/publication.py) it keeps PII in clear, because support
agents and website personalisation need names and emails; the API only returns them to keys with
the `pii:read` scope. It holds one pre-assembled JSON document per customer, so a lookup is two
indexed point reads, and it never contains an erased person: customers named by an erasure
request, or holding an identifier on the privacy suppression list (docs/privacy.md), are left
out when it is built, and the identifiers of erasure requests are listed so the API answers 404
for them even if they re-appear before the privacy asset purges them.

Each build writes a new, uniquely named file and then atomically moves the symlink
`CDP_SERVING_SNAPSHOT` (default data/publication/cdp_serving.duckdb) onto it; readers that hold
the previous file keep reading it, and the API notices the new target on its next request.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path

import duckdb
import pyarrow as pa

from orchestration.catalog import catalog, dbt_var
from orchestration.fingerprints import digest, relation_fingerprint
from orchestration.inputs import validate_inputs
from orchestration.privacy.audit import LOG, last_erasure_at
from orchestration.private_files import private_build_dir, publish_private
from orchestration.privacy.audit import salt as privacy_salt
from orchestration.record_ids import clear_record_id_sources, sql_string_list
from orchestration.serving.versions import (
    point_symlink,
    remove_old_versions,
    remove_versions_before,
)
from orchestration.settings import PROJECT_DIR
from orchestration.warehouse import Warehouse

SNAPSHOT_ENV = "CDP_SERVING_SNAPSHOT"
DEFAULT_SNAPSHOT = "data/publication/cdp_serving.duckdb"
# Recent events kept per customer in the snapshot (the API may return fewer).
EVENTS_PER_CUSTOMER = 50


def customer_pii_columns() -> frozenset[str]:
    """Columns of `customers` that are personal data: those its dbt YAML marks `pii: true`."""
    return catalog().pii_columns("customers")


# Event fields holding a source record id -> the field naming its source (the dbt YAML marks
# them `embeds_pii` on customer_events; the asset passes those). Served only with pii:read when
# the source's record id is an identifier (a CRM contact id, a loyalty id).
EVENT_RECORD_ID_FIELDS: Mapping[str, str] = {"event_id": "source"}
EVENT_FIELDS: tuple[str, ...] = (
    "event_id", "source", "event_type", "channel", "occurred_at", "revenue",
)


def identifier_types() -> tuple[str, ...]:
    """Identifier types the API accepts, as in customer_identities.identifier_type: those of dbt
    var `identity.identifier_types` (read from dbt_project.yml; no manifest needed), then the new
    types (`new_type:`) of the valid declared inputs (orchestration.inputs, inputs/*.yml). An
    invalid declaration is skipped, not raised: the API keeps answering for every other type
    (the loader and `cdp prepare` report the declaration's problems)."""
    types = list(dbt_var("identity.identifier_types"))
    loaded, _problems = validate_inputs()
    for declaration in (item.declaration for item in loaded):
        for identifier_type, spec in declaration.identifier_specs().items():
            if spec.new_type is not None and identifier_type not in types:
                types.append(identifier_type)
    return tuple(types)


def _model(name: str) -> Callable[[], str]:
    return lambda: catalog().relation(name)


@dataclass(frozen=True)
class Relations:
    """Where the snapshot reads from in the warehouse (schema-qualified); by default the dbt
    models' relations from the catalog, looked up when a Relations is made."""

    customers: str = field(default_factory=_model("customers"))
    identities: str = field(default_factory=_model("customer_identities"))
    merges: str = field(default_factory=_model("customer_id_merges"))
    segment_memberships: str = field(default_factory=_model("segment_memberships"))
    journey_stages: str = field(default_factory=_model("customer_journey_stages"))
    features: str = field(default_factory=_model("customer_features"))
    predictions: str = field(
        default_factory=lambda: catalog().source("predictions", "customer_predictions"))
    events: str = field(default_factory=_model("customer_events"))
    privacy_requests: str = field(default_factory=_model("stg_privacy__requests"))
    # Written by the privacy asset (orchestration/privacy.py), not by dbt.
    suppression_list: str = "privacy.suppression_list"


@dataclass
class SnapshotReport:
    path: Path
    customers: int
    identities: int
    erased_customers: int
    erased_identities: int
    seconds: float
    missing: list[str] = field(default_factory=list)
    # True when nothing the snapshot reads changed since the current version: it was kept.
    reused: bool = False

    def as_metadata(self) -> dict[str, object]:
        return {
            "customers": self.customers,
            "identities": self.identities,
            "erased_customers": self.erased_customers,
            "erased_identities": self.erased_identities,
            "build_seconds": round(self.seconds, 2),
            "missing_relations": ", ".join(self.missing) or "none",
            "unchanged_kept": self.reused,
        }


def snapshot_path() -> Path:
    path = Path(os.environ.get(SNAPSHOT_ENV, DEFAULT_SNAPSHOT)).expanduser()
    return path if path.is_absolute() else (PROJECT_DIR / path)


def _exists(con: duckdb.DuckDBPyConnection, relation: str) -> bool:
    schema, name = relation.split(".", 1)
    return con.execute(
        "select count(*) from information_schema.tables "
        "where table_catalog = current_database() and table_schema = ? and table_name = ?",
        [schema, name],
    ).fetchone()[0] > 0


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    schema, name = relation.split(".", 1)
    return [row[0] for row in con.execute(
        "select column_name from information_schema.columns "
        "where table_catalog = current_database() and table_schema = ? and table_name = ? "
        "order by ordinal_position",
        [schema, name],
    ).fetchall()]


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _event_struct(fields: Iterable[str], masked: Mapping[str, str], clear: str,
                  of: str = "") -> str:
    """One event as a struct of `fields`, read from the columns (or from the struct `of`);
    `masked` fields become null unless their source (the field they name) is one of `clear`."""
    def field(name: str) -> str:
        return f"{of}.{_q(name)}" if of else _q(name)

    parts = []
    for name in fields:
        value = field(name)
        if name in masked:
            value = f"case when {field(masked[name])} in ({clear}) then {value} end"
        parts.append(f"{_q(name)} := {value}")
    return f"struct_pack({', '.join(parts)})"


def _build_sql(con: duckdb.DuckDBPyConnection, rel: Relations, missing: list[str],
               customer_pii: frozenset[str], event_record_ids: Mapping[str, str],
               clear_sources: frozenset[str]) -> list[str]:
    """Statements that fill the attached database `snap` from the warehouse."""

    def have(name: str) -> bool:
        relation = getattr(rel, name)
        ok = _exists(con, relation)
        if not ok:
            missing.append(relation)
        return ok

    for required in ("customers", "identities"):
        if not _exists(con, getattr(rel, required)):
            raise RuntimeError(f"serving snapshot: {getattr(rel, required)} does not exist; "
                               "build the identity marts first")
    statements: list[str] = []

    # Erasure: identifiers named by an erasure request, and every customer they resolve to.
    if have("privacy_requests"):
        statements.append(f"""
            create table snap.erased_identities as
            select distinct identifier_type || ':' || identifier_value as identity_id
            from {rel.privacy_requests}
            where request_type = 'erasure' and identifier_value is not null""")
    else:
        statements.append("create table snap.erased_identities (identity_id varchar)")
    # ... and identifiers on the privacy suppression list (erased or suppressed people, stored
    # as salted hashes by orchestration/privacy/), in case a profile still holds one.
    suppressed = ""
    if _exists(con, rel.suppression_list):
        salt = privacy_salt().replace("'", "''")
        suppressed = (f"\n        or sha256('{salt}' || i.identifier_value) in "
                      f"(select identifier_hash from {rel.suppression_list})")
    statements.append(f"""
        create table snap.erased_customers as
        select distinct i.customer_id
        from {rel.identities} as i
        where i.identity_id in (select identity_id from snap.erased_identities){suppressed}""")
    kept = "customer_id not in (select customer_id from snap.erased_customers)"

    customer_columns = _columns(con, rel.customers)
    pii = [c for c in customer_columns if c in customer_pii]
    public = [c for c in customer_columns if c not in pii]
    pii_related = [c for c in customer_columns
                   if any(c.startswith(p + "_") for p in pii)]  # provenance of PII attributes

    statements.append(f"""
        create table snap.identity_lookup as
        select identity_id, customer_id, identifier_type from {rel.identities} where {kept}""")
    if have("merges"):
        statements.append(f"""
            create table snap.customer_id_aliases as
            select old_customer_id, current_customer_id as customer_id from {rel.merges}
            where current_customer_id not in (select customer_id from snap.erased_customers)""")
    else:
        statements.append("create table snap.customer_id_aliases "
                          "(old_customer_id varchar, customer_id varchar)")

    def json_of(columns: list[str], relation: str, alias: str) -> str:
        return (f"select customer_id, to_json(struct_pack("
                + ", ".join(f"{_q(c)} := {_q(c)}" for c in columns)
                + f")) as {alias} from {relation} where {kept}")

    attribute_columns = [c for c in public if c not in pii_related]
    ctes = [
        f"attributes as ({json_of(attribute_columns, rel.customers, 'doc')})",
        f"personal as ({json_of(pii + pii_related, rel.customers, 'doc')})" if pii else
        "personal as (select null::varchar as customer_id, null::json as doc where false)",
        f"""identifiers as (
            select customer_id, to_json(list(struct_pack(
                identifier_type := identifier_type, identifier_value := identifier_value,
                first_seen_at := first_seen_at, last_seen_at := last_seen_at)
                order by identifier_type, identifier_value)) as doc
            from {rel.identities} where {kept} group by customer_id)""",
    ]
    joins = ["left join personal using (customer_id)", "left join identifiers using (customer_id)"]
    selects = ["attributes.doc as attributes_json", "personal.doc as pii_json",
               "identifiers.doc as identifiers_json"]
    if have("segment_memberships"):
        ctes.append(f"""segments as (
            select customer_id, to_json(list(struct_pack(
                segment_name := segment_name, entered_at := entered_at)
                order by segment_name)) as doc
            from {rel.segment_memberships} where {kept} group by customer_id)""")
        joins.append("left join segments using (customer_id)")
        selects.append("segments.doc as segments_json")
    else:
        selects.append("null::json as segments_json")
    # One row per customer: every column but the key becomes the JSON document.
    for name, cte in (("journey_stages", "journey"), ("features", "features"),
                      ("predictions", "predictions")):
        relation = getattr(rel, name)
        if have(name):
            columns = [c for c in _columns(con, relation) if c != "customer_id"]
            ctes.append(f"{cte} as ({json_of(columns, relation, 'doc')})")
            joins.append(f"left join {cte} using (customer_id)")
            selects.append(f"{cte}.doc as {cte}_json")
        else:
            selects.append(f"null::json as {cte}_json")
    if have("events"):
        # The newest events first, ties by event_id, as one list per customer that both
        # documents serialise (the public one masked by list_transform): a second sorted list
        # aggregate cost a third of the snapshot's time (docs/benchmarks.md).
        ctes.append(f"""recent_events as (
            select customer_id, event_id, source, event_type, channel, occurred_at, revenue
            from {rel.events}
            where customer_id is not null and {kept}
            qualify row_number() over (
                partition by customer_id order by occurred_at desc, event_id
            ) <= {EVENTS_PER_CUSTOMER})""")
        ctes.append(f"""recent_event_lists as (
            select customer_id, list({_event_struct(EVENT_FIELDS, {}, '')}
                order by occurred_at desc, event_id) as events
            from recent_events group by customer_id)""")
        # Two documents: with record ids that are identifiers (pii:read) and without them.
        clear = sql_string_list(clear_sources)
        masked = _event_struct(EVENT_FIELDS, event_record_ids, clear, of="event")
        ctes.append(f"""events as (
            select customer_id, to_json(events) as doc,
                to_json(list_transform(events, lambda event: {masked})) as public_doc
            from recent_event_lists)""")
        joins.append("left join events using (customer_id)")
        selects += ["events.doc as events_pii_json", "events.public_doc as events_json"]
    else:
        selects += ["null::json as events_pii_json", "null::json as events_json"]

    statements.append(
        "create table snap.profiles as with " + ",\n".join(ctes)
        + "\nselect attributes.customer_id, " + ", ".join(
            f"cast({s.split(' as ')[0]} as varchar) as {s.split(' as ')[1]}" for s in selects)
        + "\nfrom attributes " + " ".join(joins))
    statements += [
        "create unique index profiles_customer_id on snap.profiles (customer_id)",
        "create unique index identity_lookup_identity_id on snap.identity_lookup (identity_id)",
        "create index erased_identities_identity_id on snap.erased_identities (identity_id)",
        "create index customer_id_aliases_old on snap.customer_id_aliases (old_customer_id)",
    ]
    return statements


def build_snapshot(warehouse: Warehouse | duckdb.DuckDBPyConnection, target: Path | None = None,
                   relations: Relations | None = None,
                   customer_pii: Iterable[str] | None = None,
                   event_record_ids: Mapping[str, str] | None = None,
                   clear_sources: Iterable[str] | None = None) -> SnapshotReport:
    """Build a new snapshot file from the warehouse and point `target` (a symlink) at it.

    `warehouse`: a session on the target (`WarehouseResource.open()`), or a DuckDB connection to
    a DuckDB warehouse. `customer_pii`: columns of `customers` served only with scope pii:read
    (the asset passes those the dbt YAML marks `pii: true`; customer_pii_columns() is always
    added). `event_record_ids`: event fields that hold record ids (default
    EVENT_RECORD_ID_FIELDS; the asset passes the dbt `embeds_pii` columns of customer_events);
    served only with pii:read unless their source is one of `clear_sources` (default: dbt var
    identity.sources, record_ids.py).

    The file is written in a private 0700 folder and is 0600 before it appears beside `target`:
    it is never readable by others, not even half-built."""
    started = time.perf_counter()
    target = (target or snapshot_path()).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    version = target.with_name(f".{target.name}.{stamp}.{os.getpid()}")
    missing: list[str] = []
    event_fields = EVENT_RECORD_ID_FIELDS if event_record_ids is None else event_record_ids
    clear = frozenset(clear_record_id_sources() if clear_sources is None else clear_sources)
    rel = relations or Relations()
    with _assembly_connection(warehouse, rel) as con:
        statements = _build_sql(con, rel, missing,
                                frozenset(customer_pii or ()) | customer_pii_columns(),
                                {k: v for k, v in event_fields.items() if k in EVENT_FIELDS},
                                clear)
        with private_build_dir(target) as folder:
            built = folder / version.name
            counts, fingerprint = _write_snapshot(con, built, statements, rel,
                                                  _current_fingerprint(target))
            if counts is not None:
                # personal data in clear: readable by the service account only, from the first byte
                publish_private(built, version)
        erased_at = last_erasure_at(con)
    reused = counts is None
    if reused:
        counts = _current_counts(target)
    else:
        point_symlink(target, version)
    remove_old_versions(target)
    if erased_at is not None:  # earlier versions may still hold a person erased since
        if erased_at.tzinfo is not None:  # a timestamptz column on PostgreSQL
            erased_at = erased_at.astimezone(dt.UTC).replace(tzinfo=None)
        remove_versions_before(target, erased_at)
    return SnapshotReport(
        path=target, customers=counts["profiles"], identities=counts["identity_lookup"],
        erased_customers=counts["erased_customers"],
        erased_identities=counts["erased_identities"],
        seconds=time.perf_counter() - started, missing=missing, reused=reused)


def recent_events_sql(events: str) -> str:
    """The last EVENTS_PER_CUSTOMER events of each customer, in SQL all three engines share
    (names unquoted: Spark reads "double quotes" as a string)."""
    columns = ", ".join(("customer_id", *EVENT_FIELDS))
    return (f"select {columns} from (select {columns}, row_number() over ("
            "partition by customer_id order by occurred_at desc, event_id) as event_rank "
            f"from {events} where customer_id is not null) as ranked "
            f"where event_rank <= {EVENTS_PER_CUSTOMER}")


def _local_arrow(frame: object) -> pa.Table:
    """A frame read from the target as Arrow, timestamps in microseconds (DuckDB's TIMESTAMP,
    the type the marts have; nanosecond columns would render differently in JSON)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    columns = []
    for column, field_ in zip(table.columns, table.schema):
        if pa.types.is_timestamp(field_.type) and field_.type.unit != "us":
            column = column.cast(pa.timestamp("us", field_.type.tz), safe=False)
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


@contextmanager
def _assembly_connection(warehouse: Warehouse | duckdb.DuckDBPyConnection,
                         rel: Relations) -> Iterator[duckdb.DuckDBPyConnection]:
    """The DuckDB connection the snapshot statements run on: the warehouse's own on a DuckDB
    target; otherwise an in-memory database holding copies of the relations the snapshot
    reads (those that exist), read from the target through the warehouse interface."""
    if isinstance(warehouse, duckdb.DuckDBPyConnection):
        yield warehouse
        return
    if warehouse.engine == "duckdb":
        yield warehouse.con  # type: ignore[attr-defined]
        return
    local = duckdb.connect()
    try:
        local.execute("set TimeZone = 'UTC'")
        copies = {getattr(rel, f.name): f.name for f in fields(Relations)}
        copies[LOG] = "privacy_log"
        for relation, name in copies.items():
            if not warehouse.exists(relation):
                continue
            sql = recent_events_sql(relation) if name == "events" else f"select * from {relation}"
            schema, table = relation.split(".", 1)
            local.register("copied_frame", _local_arrow(warehouse.query(sql)))
            local.execute(f"create schema if not exists {_q(schema)}")
            local.execute(f"create table {_q(schema)}.{_q(table)} as select * from copied_frame")
            local.unregister("copied_frame")
        yield local
    finally:
        local.close()


def _inputs_fingerprint(con: duckdb.DuckDBPyConnection, rel: Relations,
                        statements: list[str]) -> str:
    """What the snapshot would be built from: the statements (salts, rules, columns included)
    and the content fingerprint of every relation they read (orchestration/fingerprints.py)."""
    relations = sorted({getattr(rel, f.name) for f in fields(Relations)})
    found = {}
    for relation in relations:
        if _exists(con, relation):
            schema, name = relation.split(".", 1)
            found[relation] = relation_fingerprint(con, schema, name)[0]
    return digest([statements, found])


def _stored(target: Path, column: str) -> str | None:
    """A column of the `_snapshot` row of the version `target` points at (None: no version, or
    one written before the column existed)."""
    if not target.exists():
        return None
    try:
        con = duckdb.connect(str(target.resolve()), read_only=True)
    except duckdb.Error:
        return None
    try:
        return con.execute(f"select {_q(column)} from _snapshot").fetchone()[0]
    except duckdb.Error:
        return None
    finally:
        con.close()


def _current_fingerprint(target: Path) -> str | None:
    return _stored(target, "fingerprint")


def _current_counts(target: Path) -> dict[str, int]:
    return json.loads(_stored(target, "counts_json") or "{}")


def _write_snapshot(warehouse: duckdb.DuckDBPyConnection, path: Path, statements: list[str],
                    rel: Relations, current: str | None) -> tuple[dict[str, int] | None, str]:
    """Fill the file at `path`, unless what it would be built from has the fingerprint of the
    current version (`current`): then (None, fingerprint) and the file stays empty."""
    warehouse.execute("attach ? as snap", [str(path)])
    # Fingerprinted after the attach: nothing reads the sources before the private file exists.
    try:
        fingerprint = _inputs_fingerprint(warehouse, rel, statements)
        if fingerprint == current:
            warehouse.execute("detach snap")
            return None, fingerprint
        for statement in statements:
            warehouse.execute(statement)
        counts = {name: warehouse.execute(f"select count(*) from snap.{name}").fetchone()[0]
                  for name in ("profiles", "identity_lookup", "erased_customers",
                               "erased_identities")}
        warehouse.execute(
            "create table snap._snapshot as select cast(? as timestamp) as published_at, "
            "? as counts_json, ? as fingerprint",
            [dt.datetime.now(dt.UTC).replace(tzinfo=None), json.dumps(counts), fingerprint])
        warehouse.execute("detach snap")
    except BaseException:
        warehouse.execute("detach database if exists snap")
        raise
    return counts, fingerprint
