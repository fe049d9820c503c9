"""Data-subject requests: erasure, suppression and access, executed on the warehouse.

Requests come from the `privacy_requests` source (staged as main_staging.stg_privacy__requests).
Each new request is resolved to the person's whole identity cluster (main_marts.customer_identities)
and executed once:

* erasure (suppress and delete): raw rows of the cluster are deleted, or their PII columns nulled
  where the row must stay for accounting (orders, store transactions); the rows of every derived
  table (intermediate, marts, predictions, ...) are deleted; the identifiers' salted hashes go to
  `privacy.suppression_list`, so data arriving later cannot re-create the person; destinations
  lose the person on their next sync (the activation engine removes keys that left the source).
* suppression (suppress only): hashes on the suppression list and derived rows removed, raw kept.
* access: a JSON export of every row held about the cluster, in every table.

Audit: `privacy.privacy_requests_processed` (one row per request, identifier stored as a hash) and
`privacy.privacy_request_log` (one row per request and target table: action, status, rows
affected, completed_at). See docs/privacy.md.
"""


import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import yaml

from orchestration.landing_contract import SOURCES_BY_NAME
from orchestration.settings import PROJECT_DIR
from orchestration.warehouse import WAREHOUSE_POOL, WarehouseResource

SCHEMA = "privacy"
REQUESTS = f"{SCHEMA}.privacy_requests_processed"
LOG = f"{SCHEMA}.privacy_request_log"
SUPPRESSION = f"{SCHEMA}.suppression_list"
DEFAULT_SALT = "open-cdp-privacy"
# A processed request's identifier in raw.privacy_requests: this prefix and the salted hash.
HASH_PREFIX = "sha256:"

ERASE_TYPES = frozenset({"erasure", "erase", "deletion", "delete", "suppress_and_delete"})
SUPPRESS_TYPES = frozenset({"suppression", "suppress", "suppress_only", "restriction",
                            "do_not_sell", "opt_out"})
ACCESS_TYPES = frozenset({"access", "export", "portability"})

# Raw tables whose rows must stay for accounting: their PII columns are nulled, not deleted.
NULL_PII_COLUMNS: dict[str, tuple[str, ...]] = {
    "shop_orders": ("shop_customer_id", "email", "phone"),
    "pos_transactions": ("loyalty_id",),
}
# Schemas never scrubbed as derived data: raw is handled row by row, privacy is the audit trail,
# activation state is what lets the next sync send the removal.
NOT_DERIVED = ("raw", SCHEMA, "information_schema", "pg_catalog")
KEPT_TABLES = (("activation", "sync_state"),)
PRIVACY_STATUSES = ("received", "running", "finished", "partial", "failed")


def salt() -> str:
    return os.environ.get("CDP_PRIVACY_SALT", DEFAULT_SALT)


def identifier_hash(value: str, salt_value: str | None = None) -> str:
    """Python twin of the dbt macro privacy_hash: sha256 hex of salt || normalised value."""
    return hashlib.sha256(((salt_value if salt_value is not None else salt()) + value)
                          .encode()).hexdigest()


def export_dir() -> Path:
    path = Path(os.environ.get("CDP_PRIVACY_EXPORT_DIR", "data/privacy/exports")).expanduser()
    return path if path.is_absolute() else (PROJECT_DIR / path).resolve()


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


# --------------------------------------------------------------------------------------------
# Where identifiers live: staging models (normalised values) and the raw rows behind them


@dataclass(frozen=True)
class IdentifiedSource:
    """A landing source, its staging model and the staged columns that hold identifiers."""

    source: str
    staging_model: str
    staging_record_id: str
    identifier_columns: tuple[str, ...]
    raw_record_id_sql: str

    @property
    def raw_table(self) -> str:
        return f"raw.{_q(self.source)}"


def identified_sources(project_file: Path | None = None) -> list[IdentifiedSource]:
    """From dbt var `identity.sources` (dbt_project.yml) and the landing contract."""
    project = yaml.safe_load((project_file or PROJECT_DIR / "dbt_project.yml").read_text())
    found = []
    for entry in project["vars"]["identity"]["sources"]:
        name = entry["source"]
        columns = tuple(entry.get("identifiers", {}).values())
        if entry.get("identifier_value_column"):
            columns += (entry["identifier_value_column"],)
        raw_id = _q(SOURCES_BY_NAME[name].record_id)
        if name == "consents":  # stg_consent__consents: a hash of file and line when missing
            raw_id = ("coalesce(consent_id, md5(_source_file || ':' || "
                      "cast(_source_line as varchar)))")
        found.append(IdentifiedSource(name, entry["model"], entry["record_id"],
                                      tuple(dict.fromkeys(columns)), raw_id))
    return found


def _relation_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    return con.execute(
        "select count(*) from information_schema.tables where table_schema = ? "
        "and table_name = ? and table_catalog = current_database()", [schema, name],
    ).fetchone()[0] > 0


def ensure_privacy_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"create schema if not exists {SCHEMA}")
    con.execute(f"""
        create table if not exists {REQUESTS} (
            request_id varchar primary key,
            request_type varchar,
            action varchar,
            identifier_type varchar,
            identifier_hash varchar,
            received_at timestamp,
            status varchar,
            customers_in_cluster integer,
            identifiers_in_cluster integer,
            processed_at timestamp,
            detail varchar
        )""")
    con.execute(f"""
        create table if not exists {LOG} (
            request_id varchar,
            target varchar,
            action varchar,
            status varchar,
            rows_affected bigint,
            started_at timestamp,
            completed_at timestamp,
            detail varchar
        )""")
    con.execute(f"""
        create table if not exists {SUPPRESSION} (
            identifier_hash varchar,
            identifier_type varchar,
            suppression_action varchar,
            request_id varchar,
            added_at timestamp
        )""")


# --------------------------------------------------------------------------------------------
# Resolving a request to its cluster


@dataclass
class Cluster:
    customer_ids: set[str] = field(default_factory=set)
    identifiers: set[tuple[str, str]] = field(default_factory=set)  # (type, normalised value)

    @property
    def values(self) -> set[str]:
        return {value for _, value in self.identifiers} | self.customer_ids


def resolve_cluster(con: duckdb.DuckDBPyConnection, identifier_type: str | None,
                    identifier_value: str | None) -> Cluster:
    """Every customer holding the identifier, and every identifier of those customers."""
    cluster = Cluster()
    if not identifier_value:
        return cluster
    cluster.identifiers.add((identifier_type or "unknown", identifier_value))
    if not _relation_exists(con, "main_marts", "customer_identities"):
        return cluster
    rows = con.execute(
        "select customer_id from main_marts.customer_identities "
        "where identifier_value = ? and (identifier_type = ? or ? is null)",
        [identifier_value, identifier_type, identifier_type]).fetchall()
    cluster.customer_ids = {r[0] for r in rows}
    if cluster.customer_ids:
        cluster.identifiers |= set(con.execute(
            "select identifier_type, identifier_value from main_marts.customer_identities "
            "where list_contains(?, customer_id)", [sorted(cluster.customer_ids)]).fetchall())
    return cluster


def _load_values(con: duckdb.DuckDBPyConnection, values: Iterable[str]) -> None:
    con.execute("create or replace temp table _privacy_values (value varchar)")
    values = sorted({v for v in values if v})
    if values:
        con.execute("insert into _privacy_values select unnest(?::varchar[])", [values])


def _matching_record_ids(con: duckdb.DuckDBPyConnection, source: IdentifiedSource,
                         customer_ids: set[str]) -> list[str]:
    """Staged record ids of `source` carrying a value of _privacy_values or owned by the cluster."""
    schema = "main_staging"
    if not _relation_exists(con, schema, source.staging_model):
        return []
    where = " or ".join(f"{_q(c)} in (select value from _privacy_values)"
                        for c in source.identifier_columns)
    ids = {r[0] for r in con.execute(
        f"select cast({_q(source.staging_record_id)} as varchar) "
        f"from {schema}.{_q(source.staging_model)} where {where}").fetchall()}
    if customer_ids and _relation_exists(con, "main_marts", "customer_source_records"):
        ids |= {r[0] for r in con.execute(
            "select source_record_id from main_marts.customer_source_records "
            "where source = ? and list_contains(?, customer_id)",
            [source.source, sorted(customer_ids)]).fetchall()}
    return sorted(ids)


# --------------------------------------------------------------------------------------------
# Execution


@dataclass
class TargetResult:
    target: str
    action: str
    rows_affected: int
    status: str = "finished"
    detail: str = ""


def erase_raw(con: duckdb.DuckDBPyConnection, cluster: Cluster,
              sources: Sequence[IdentifiedSource], delete: bool = True) -> list[TargetResult]:
    """Delete (or null PII of) the cluster's raw rows, and the rejects of the same lines."""
    _load_values(con, cluster.values)
    results = []
    for source in sources:
        if source.source == "privacy_requests" or not _relation_exists(con, "raw", source.source):
            continue
        ids = _matching_record_ids(con, source, cluster.customer_ids)
        if not ids:
            continue
        match = f"cast({source.raw_record_id_sql} as varchar) in (select unnest(?::varchar[]))"
        con.execute(
            "insert into _privacy_lines select ?, _source_file, _source_line "
            f"from {source.raw_table} where {match}", [source.source, ids])
        if not delete:
            continue
        if source.source in NULL_PII_COLUMNS:
            sets = ", ".join(f"{_q(c)} = null" for c in NULL_PII_COLUMNS[source.source])
            count = con.execute(f"update {source.raw_table} set {sets} where {match}",
                                [ids]).fetchone()[0]
            results.append(TargetResult(f"raw.{source.source}", "null_pii", count))
        else:
            count = con.execute(f"delete from {source.raw_table} where {match}",
                                [ids]).fetchone()[0]
            results.append(TargetResult(f"raw.{source.source}", "delete", count))
    if delete and _relation_exists(con, "raw", "_load_rejects"):
        count = con.execute(
            "delete from raw._load_rejects r where exists (select 1 from _privacy_lines l "
            "where l.source = r.source and l._source_file = r._source_file "
            "and l._source_line = r._source_line) "
            "or lower(trim(r.raw_value)) in (select lower(value) from _privacy_values)"
        ).fetchone()[0]
        results.append(TargetResult("raw._load_rejects", "delete", count))
    return results


def derived_tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, list[str]]]:
    """(schema, table, varchar columns) of every base table but raw, privacy and sync state."""
    rows = con.execute(
        "select t.table_schema, t.table_name, list(c.column_name order by c.ordinal_position) "
        "from information_schema.tables t join information_schema.columns c "
        "on c.table_schema = t.table_schema and c.table_name = t.table_name "
        "and c.table_catalog = t.table_catalog "
        "where t.table_type = 'BASE TABLE' and t.table_catalog = current_database() "
        "and c.data_type = 'VARCHAR' and not list_contains(?, t.table_schema) "
        "group by all order by all", [list(NOT_DERIVED)]).fetchall()
    return [(schema, table, columns) for schema, table, columns in rows
            if (schema, table) not in KEPT_TABLES]


def scrub_derived(con: duckdb.DuckDBPyConnection, cluster: Cluster) -> list[TargetResult]:
    """Delete every derived row holding one of the cluster's customer ids or identifier values."""
    _load_values(con, cluster.values)
    results = []
    for schema, table, columns in derived_tables(con):
        where = " or ".join(f"{_q(c)} in (select value from _privacy_values)" for c in columns)
        count = con.execute(f"delete from {_q(schema)}.{_q(table)} where {where}").fetchone()[0]
        if count:
            results.append(TargetResult(f"{schema}.{table}", "delete", count))
    return results


def pending_destination_removals(con: duckdb.DuckDBPyConnection,
                                 customer_ids: set[str]) -> list[TargetResult]:
    """Syncs still holding the cluster's keys: the next sync sends the removal."""
    if not customer_ids or not _relation_exists(con, "activation", "sync_state"):
        return []
    rows = con.execute(
        "select sync_name, count(*) from activation.sync_state "
        "where list_contains(?, row_key) group by 1 order by 1",
        [sorted(customer_ids)]).fetchall()
    hashes = json.dumps(sorted(identifier_hash(c) for c in customer_ids))
    return [TargetResult(f"activation:{name}", "destination_removal", count, "running", hashes)
            for name, count in rows]


def refresh_destination_removals(con: duckdb.DuckDBPyConnection) -> int:
    """Mark pending destination removals finished once the sync state no longer holds the keys."""
    if not _relation_exists(con, "activation", "sync_state"):
        return 0
    pending = con.execute(
        f"select request_id, target, detail from {LOG} "
        "where action = 'destination_removal' and status = 'running'").fetchall()
    finished = 0
    for request_id, target, detail in pending:
        sync_name = target.split(":", 1)[1]
        hashes = json.loads(detail or "[]")
        left = con.execute(
            "select count(*) from activation.sync_state where sync_name = ? "
            "and list_contains(?, sha256(? || row_key))", [sync_name, hashes, salt()]).fetchone()[0]
        if left == 0:
            con.execute(f"update {LOG} set status = 'finished', completed_at = ? "
                        "where request_id = ? and target = ? and status = 'running'",
                        [_now(), request_id, target])
            finished += 1
    for (request_id,) in con.execute(
            f"select request_id from {REQUESTS} where status = 'partial'").fetchall():
        open_targets = con.execute(f"select count(*) from {LOG} where request_id = ? and "
                                   "status in ('running', 'failed')", [request_id]).fetchone()[0]
        if open_targets == 0:
            con.execute(f"update {REQUESTS} set status = 'finished' where request_id = ?",
                        [request_id])
    return finished


def access_export(con: duckdb.DuckDBPyConnection, cluster: Cluster,
                  sources: Sequence[IdentifiedSource]) -> dict[str, list[dict[str, Any]]]:
    """Every row held about the cluster: raw rows by record id, every other table by value."""
    _load_values(con, cluster.values)
    export: dict[str, list[dict[str, Any]]] = {}

    def rows(sql: str, parameters: list[Any] | None = None) -> list[dict[str, Any]]:
        cursor = con.execute(sql, parameters or [])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    for source in sources:
        if not _relation_exists(con, "raw", source.source):
            continue
        ids = _matching_record_ids(con, source, cluster.customer_ids)
        if ids:
            found = rows(f"select * from {source.raw_table} where cast({source.raw_record_id_sql}"
                         " as varchar) in (select unnest(?::varchar[]))", [ids])
            if found:
                export[f"raw.{source.source}"] = found
    tables = con.execute(
        "select t.table_schema, t.table_name, list(c.column_name) from information_schema.tables t "
        "join information_schema.columns c on c.table_schema = t.table_schema "
        "and c.table_name = t.table_name and c.table_catalog = t.table_catalog "
        "where t.table_catalog = current_database() and c.data_type = 'VARCHAR' "
        "and t.table_schema not in ('raw', 'privacy', 'information_schema', 'pg_catalog') "
        "group by all order by all").fetchall()
    for schema, table, columns in tables:
        where = " or ".join(f"{_q(c)} in (select value from _privacy_values)" for c in columns)
        found = rows(f"select * from {_q(schema)}.{_q(table)} where {where}")
        if found:
            export[f"{schema}.{table}"] = found
    return export


def _add_to_suppression(con: duckdb.DuckDBPyConnection, cluster: Cluster, action: str,
                        request_id: str) -> int:
    rows = sorted({(identifier_hash(value), kind) for kind, value in cluster.identifiers})
    if not rows:
        return 0
    con.execute(
        f"insert into {SUPPRESSION} select h, t, ?, ?, ? from "
        "(select unnest(?::varchar[]) as h, unnest(?::varchar[]) as t) "
        f"where h not in (select identifier_hash from {SUPPRESSION} "
        "where suppression_action = ?)",
        [action, request_id, _now(), [r[0] for r in rows], [r[1] for r in rows], action])
    return len(rows)


def hash_request_identifiers(con: duckdb.DuckDBPyConnection, values: Iterable[str]) -> int:
    """Replace the plain identifier of every raw request for these values by its hash."""
    _load_values(con, values)
    ids = [r[0] for r in con.execute(
        "select request_id from main_staging.stg_privacy__requests "
        "where identifier_value in (select value from _privacy_values)").fetchall()]
    if not ids:
        return 0
    return con.execute(
        f"update raw.privacy_requests set identifier_value = '{HASH_PREFIX}' || "
        "sha256(? || s.identifier_value) from main_staging.stg_privacy__requests s "
        "where s.request_id = privacy_requests.request_id "
        "and list_contains(?, privacy_requests.request_id)", [salt(), ids]).fetchone()[0]


def request_action(request_type: str | None) -> str | None:
    kind = (request_type or "").strip().lower()
    if kind in ERASE_TYPES:
        return "erase"
    if kind in SUPPRESS_TYPES:
        return "suppress"
    if kind in ACCESS_TYPES:
        return "access"
    return None


@dataclass
class RequestOutcome:
    request_id: str
    action: str | None
    status: str
    targets: list[TargetResult]
    export_path: Path | None = None


def _write_log(con: duckdb.DuckDBPyConnection, request_id: str, started: dt.datetime,
               targets: Sequence[TargetResult]) -> None:
    for t in targets:
        completed = _now() if t.status == "finished" else None
        con.execute(f"insert into {LOG} values (?, ?, ?, ?, ?, ?, ?, ?)",
                    [request_id, t.target, t.action, t.status, t.rows_affected, started,
                     completed, t.detail])


def execute_request(con: duckdb.DuckDBPyConnection, request: dict[str, Any],
                    sources: Sequence[IdentifiedSource]) -> RequestOutcome:
    """Execute one request in one transaction; the request row and log record the outcome."""
    request_id = request["request_id"]
    action = request_action(request["request_type"])
    started = _now()
    value = request["identifier_value"]
    con.execute(f"insert into {REQUESTS} values (?, ?, ?, ?, ?, ?, 'running', null, null, null, "
                "null)", [request_id, request["request_type"], action,
                          request["identifier_type"], identifier_hash(value) if value else None,
                          request["received_at"]])
    if action is None or not value:
        reason = ("unknown request type " + repr(request["request_type"]) if action is None
                  else "identifier missing or not valid for its type")
        con.execute(f"update {REQUESTS} set status = 'failed', processed_at = ?, detail = ? "
                    "where request_id = ?", [_now(), reason, request_id])
        _write_log(con, request_id, started,
                   [TargetResult("request", "validate", 0, "failed", reason)])
        return RequestOutcome(request_id, action, "failed", [])
    cluster = resolve_cluster(con, request["identifier_type"], value)
    targets: list[TargetResult] = []
    export_path = None
    con.execute("begin transaction")
    try:
        con.execute("create or replace temp table _privacy_lines "
                    "(source varchar, _source_file varchar, _source_line bigint)")
        if action == "access":
            export = access_export(con, cluster, sources)
            export_path = export_dir() / f"{request_id}.json"
            export_path.parent.mkdir(parents=True, exist_ok=True)
            export_path.write_text(json.dumps(
                {"request_id": request_id, "generated_at": _now().isoformat(),
                 "customer_ids": sorted(cluster.customer_ids), "tables": export},
                default=str, indent=1))
            targets.append(TargetResult("export", "export", sum(map(len, export.values())),
                                        detail=str(export_path)))
        else:
            suppressed = _add_to_suppression(con, cluster, action, request_id)
            targets.append(TargetResult(SUPPRESSION, "suppress", suppressed))
            if action == "erase":
                targets += erase_raw(con, cluster, sources)
                # every request of the person keeps only the hash of its identifier
                count = hash_request_identifiers(con, cluster.values)
                targets.append(TargetResult("raw.privacy_requests", "hash_identifier", count))
            targets += scrub_derived(con, cluster)
            targets += pending_destination_removals(con, cluster.customer_ids)
        hash_request_identifiers(con, {value})
        status = "partial" if any(t.status != "finished" for t in targets) else "finished"
        _write_log(con, request_id, started, targets)
        con.execute(f"update {REQUESTS} set status = ?, customers_in_cluster = ?, "
                    "identifiers_in_cluster = ?, processed_at = ? where request_id = ?",
                    [status, len(cluster.customer_ids), len(cluster.identifiers), _now(),
                     request_id])
        con.execute("commit")
    except Exception as error:
        con.execute("rollback")
        con.execute(f"update {REQUESTS} set status = 'failed', processed_at = ?, detail = ? "
                    "where request_id = ?", [_now(), str(error)[:500], request_id])
        _write_log(con, request_id, started,
                   [TargetResult("request", action, 0, "failed", str(error)[:500])])
        return RequestOutcome(request_id, action, "failed", [])
    return RequestOutcome(request_id, action, status, targets, export_path)


def purge_suppressed(con: duckdb.DuckDBPyConnection,
                     sources: Sequence[IdentifiedSource]) -> list[TargetResult]:
    """Late data: raw rows carrying an erased identifier are deleted with everything built on them.

    The records' customers (re-created from late rows) are erased as a cluster too, so an
    identifier that arrived together with an erased one (a new device) is not kept either."""
    if con.execute(f"select count(*) from {SUPPRESSION} where suppression_action = 'erase'"
                   ).fetchone()[0] == 0:
        return []
    late = Cluster()
    for source in sources:
        if source.source == "privacy_requests" or not _relation_exists(
                con, "main_staging", source.staging_model):
            continue
        columns = source.identifier_columns
        suppressed = " or ".join(
            f"sha256(? || {_q(c)}) in (select identifier_hash from {SUPPRESSION} "
            "where suppression_action = 'erase')" for c in columns)
        # every identifier on a record that carries an erased one (a new device, a new phone)
        for row in con.execute(
                f"select {', '.join(_q(c) for c in columns)} from "
                f"main_staging.{_q(source.staging_model)} where {suppressed}",
                [salt()] * len(columns)).fetchall():
            late.identifiers |= {(column, value) for column, value in zip(columns, row)
                                 if value is not None}
    if not late.identifiers:
        return []
    if _relation_exists(con, "main_marts", "customer_identities"):
        _load_values(con, late.values)
        late.customer_ids = {r[0] for r in con.execute(
            "select distinct customer_id from main_marts.customer_identities "
            "where identifier_value in (select value from _privacy_values)").fetchall()}
        if late.customer_ids:
            late.identifiers |= set(con.execute(
                "select identifier_type, identifier_value from main_marts.customer_identities "
                "where list_contains(?, customer_id)", [sorted(late.customer_ids)]).fetchall())
    con.execute("begin transaction")
    try:
        con.execute("create or replace temp table _privacy_lines "
                    "(source varchar, _source_file varchar, _source_line bigint)")
        _add_to_suppression(con, late, "erase", "late_data")
        results = erase_raw(con, late, sources) + scrub_derived(con, late)
        results += pending_destination_removals(con, late.customer_ids)
        _write_log(con, "late_data", _now(), results)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return results


def new_requests(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    if not _relation_exists(con, "main_staging", "stg_privacy__requests"):
        return []
    cursor = con.execute(
        "select request_id, identifier_type, identifier_value, request_type, received_at "
        f"from main_staging.stg_privacy__requests where request_id not in "
        f"(select request_id from {REQUESTS}) order by received_at, request_id")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


@dataclass
class PrivacyRunReport:
    outcomes: list[RequestOutcome]
    late_data: list[TargetResult]
    destination_removals_finished: int

    def counts(self) -> dict[str, int]:
        by_status: dict[str, int] = {}
        for outcome in self.outcomes:
            by_status[outcome.status] = by_status.get(outcome.status, 0) + 1
        return by_status


def execute_privacy_requests(con: duckdb.DuckDBPyConnection,
                             log: Callable[[str], None] = lambda message: None,
                             project_file: Path | None = None) -> PrivacyRunReport:
    """Purge late data of erased people, then execute every request not executed before."""
    ensure_privacy_tables(con)
    sources = identified_sources(project_file)
    late = purge_suppressed(con, sources)
    if late:
        log(f"late data of erased people removed: {sum(t.rows_affected for t in late)} rows")
    outcomes = []
    for request in new_requests(con):
        outcome = execute_request(con, request, sources)
        log(f"request {outcome.request_id} ({outcome.action}): {outcome.status}")
        outcomes.append(outcome)
    if _relation_exists(con, "raw", "privacy_requests"):  # a re-delivered request file
        con.execute(
            f"update raw.privacy_requests set identifier_value = '{HASH_PREFIX}' || "
            "sha256(? || s.identifier_value) from main_staging.stg_privacy__requests s "
            "where s.request_id = privacy_requests.request_id "
            f"and s.request_id in (select request_id from {REQUESTS}) "
            f"and not starts_with(privacy_requests.identifier_value, '{HASH_PREFIX}')", [salt()])
    finished = refresh_destination_removals(con)
    con.execute("select 1").fetchall()  # leave no unfetched result on the caller's connection
    return PrivacyRunReport(outcomes, late, finished)


def find_traces(con: duckdb.DuckDBPyConnection, values: Iterable[str],
                skip: Sequence[tuple[str, str]] = ()) -> dict[str, int]:
    """Rows of any table or view, in any column cast to text, holding one of `values`:
    `{"schema.table.column": rows}`. Case-insensitive; values with letters (emails, ids) match
    inside longer text (JSON payloads), all-digit values (phones) only whole. For auditing."""
    _load_values(con, {v.strip().lower() for v in values})
    columns = con.execute(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where table_catalog = current_database() "
        "and table_schema not in ('information_schema', 'pg_catalog') order by all").fetchall()
    found: dict[str, int] = {}
    for schema, table, column in columns:
        if (schema, table) in skip:
            continue
        text = f"lower(cast(scanned.{_q(column)} as varchar))"
        count = con.execute(
            f"select count(*) from {_q(schema)}.{_q(table)} as scanned where exists (select 1 "
            f"from _privacy_values as pv where trim({text}) = pv.value "
            f"or (regexp_matches(pv.value, '[a-z]') and contains({text}, pv.value)))"
        ).fetchone()[0]
        if count:
            found[f"{schema}.{table}.{column}"] = count
    return found


# --------------------------------------------------------------------------------------------
# Loader hook (proposed call from orchestration/ingestion.py)


def drop_suppressed_rows(con: duckdb.DuckDBPyConnection, source_name: str,
                         source_file: str) -> int:
    """Delete the just-loaded rows of `source_file` that carry an erased identifier.

    Matches raw values lower-cased and trimmed (emails, ids) against the suppression hashes; the
    privacy asset's purge after dbt catches spellings only normalisation reveals (phones)."""
    if not _relation_exists(con, SCHEMA, "suppression_list"):
        return 0
    contract = SOURCES_BY_NAME[source_name]
    candidates = [c for c in ("email", "phone", "user_id", "anonymous_id", "shop_customer_id",
                              "loyalty_id", "contact_id", "requester_email", "requester_phone",
                              "identifier_value") if c in contract.known_columns]
    if not candidates or source_name == "privacy_requests":
        return 0
    where = " or ".join(
        f"sha256(? || lower(trim(cast({_q(c)} as varchar)))) in (select identifier_hash "
        f"from {SUPPRESSION} where suppression_action = 'erase')" for c in candidates)
    return con.execute(
        f"delete from raw.{_q(source_name)} where _source_file = ? and ({where})",
        [source_file, *[salt()] * len(candidates)]).fetchone()[0]


# --------------------------------------------------------------------------------------------
# Dagster


@dg.asset(
    key=dg.AssetKey(["privacy", "privacy_requests_executed"]),
    deps=[dg.AssetKey(["stg_privacy__requests"]), dg.AssetKey(["customer_identities"]),
          dg.AssetKey(["customer_source_records"]), dg.AssetKey(["customers"]),
          dg.AssetKey(["customer_consents"])],
    pool=WAREHOUSE_POOL,
    group_name="privacy",
    owners=["team:privacy"],
    kinds={"python", "duckdb"},
    description=(
        "Executes new data-subject requests (erasure, suppression, access) on the whole identity "
        "cluster, purges late-arriving rows of erased people, and records "
        "privacy.privacy_requests_processed, privacy.privacy_request_log and "
        "privacy.suppression_list (hashes only). docs/privacy.md."),
)
def privacy_requests_executed(context: dg.AssetExecutionContext,
                              warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        report = execute_privacy_requests(con, log=context.log.info)
        open_requests = con.execute(
            f"select status, count(*) from {REQUESTS} group by 1 order by 1").fetchall()
        suppressed = con.execute(f"select count(distinct identifier_hash) from {SUPPRESSION}"
                                 ).fetchone()[0]
    failed = [o.request_id for o in report.outcomes if o.status == "failed"]
    metadata = {
        "requests_this_run": dg.MetadataValue.json(report.counts()),
        "requests_by_status": dg.MetadataValue.json(dict(open_requests)),
        "late_rows_removed": dg.MetadataValue.int(sum(t.rows_affected for t in report.late_data)),
        "suppressed_identifiers": dg.MetadataValue.int(int(suppressed)),
        "destination_removals_confirmed": dg.MetadataValue.int(
            report.destination_removals_finished),
        "exports": dg.MetadataValue.json(
            [str(o.export_path) for o in report.outcomes if o.export_path]),
        "failed_requests": dg.MetadataValue.json(failed),
        "audit": dg.MetadataValue.md(f"`select * from {LOG} order by started_at desc`"),
    }
    if failed:
        context.log.warning(f"privacy requests failed: {failed}; see {LOG}")
    return dg.MaterializeResult(metadata=metadata)


PRIVACY_ASSETS = [privacy_requests_executed]
