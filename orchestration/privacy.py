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

The new requests of a run execute together (`execute_batch`): clusters are resolved for all of
them at once, access exports read each table once, and every erase and suppress request runs in
one transaction with one scan and one delete per table; if that transaction fails it is rolled
back and those requests run one by one (`execute_request`), so a bad request fails alone.

Audit: `privacy.privacy_requests_processed` (one row per request, identifier stored as a hash) and
`privacy.privacy_request_log` (one row per request and target table: action, status, rows
affected, completed_at). See docs/privacy.md.
"""


import datetime as dt
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import yaml

from orchestration.activation.state import forget_erased_payloads
from orchestration.ingestion.contract import SOURCES_BY_NAME
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
# Log actions that remove or overwrite personal data: each leaves the old bytes in the DuckDB
# file's free blocks until the warehouse is compacted (orchestration/compaction.py).
ERASING_ACTIONS = ("delete", "null_pii", "hash_identifier")
COMPACTION_TARGET = "warehouse_file"
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


def _register_request(con: duckdb.DuckDBPyConnection, request: dict[str, Any]) -> None:
    value = request["identifier_value"]
    con.execute(f"insert into {REQUESTS} values (?, ?, ?, ?, ?, ?, 'running', null, null, null, "
                "null)", [request["request_id"], request["request_type"],
                          request_action(request["request_type"]), request["identifier_type"],
                          identifier_hash(value) if value else None, request["received_at"]])


def _invalid_reason(request: dict[str, Any]) -> str | None:
    """Why the request cannot be executed (unknown type, no identifier), or None."""
    if request_action(request["request_type"]) is None:
        return "unknown request type " + repr(request["request_type"])
    if not request["identifier_value"]:
        return "identifier missing or not valid for its type"
    return None


def _record_failure(con: duckdb.DuckDBPyConnection, request_id: str, action: str | None,
                    started: dt.datetime, reason: str, log_action: str) -> RequestOutcome:
    con.execute(f"update {REQUESTS} set status = 'failed', processed_at = ?, detail = ? "
                "where request_id = ?", [_now(), reason[:500], request_id])
    _write_log(con, request_id, started,
               [TargetResult("request", log_action, 0, "failed", reason[:500])])
    return RequestOutcome(request_id, action, "failed", [])


def execute_request(con: duckdb.DuckDBPyConnection, request: dict[str, Any],
                    sources: Sequence[IdentifiedSource]) -> RequestOutcome:
    """Execute one request in one transaction; the request row and log record the outcome."""
    _register_request(con, request)
    return _execute_registered(con, request, sources, _now())


def _execute_registered(con: duckdb.DuckDBPyConnection, request: dict[str, Any],
                        sources: Sequence[IdentifiedSource],
                        started: dt.datetime) -> RequestOutcome:
    """One registered request on its own (the fallback of the batch): validate, then execute."""
    request_id = request["request_id"]
    action = request_action(request["request_type"])
    value = request["identifier_value"]
    reason = _invalid_reason(request)
    if reason:
        return _record_failure(con, request_id, action, started, reason, "validate")
    cluster = resolve_cluster(con, request["identifier_type"], value)
    targets: list[TargetResult] = []
    export_path = None
    con.execute("begin transaction")
    try:
        con.execute("create or replace temp table _privacy_lines "
                    "(source varchar, _source_file varchar, _source_line bigint)")
        if action == "access":
            export = access_export(con, cluster, sources)
            export_path = _write_export(request_id, cluster.customer_ids, export)
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
        return _record_failure(con, request_id, action, started, str(error), str(action))
    return RequestOutcome(request_id, action, status, targets, export_path)


# A request id is data from a landing file: it names the export file only when it is a plain
# name (letters, digits, "-", "_", "." inside); anything else gets a name derived from its hash.
_SAFE_EXPORT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def export_file_name(request_id: str) -> str:
    """The export's file name: `<request_id>.json` for a plain id, else `request-<sha256>.json`.

    Never a path: no separator, no `..`, no leading dot, so it cannot leave the export folder."""
    if _SAFE_EXPORT_NAME.fullmatch(request_id) and ".." not in request_id:
        return f"{request_id}.json"
    return f"request-{hashlib.sha256(request_id.encode()).hexdigest()[:32]}.json"


def _private_dir(path: Path) -> Path:
    """Create `path` (and parents) owner-only (0700); an existing folder is tightened too."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _write_export(request_id: str, customer_ids: Iterable[str],
                  tables: dict[str, list[dict[str, Any]]]) -> Path:
    folder = _private_dir(export_dir())
    path = folder / export_file_name(request_id)
    body = json.dumps(
        {"request_id": request_id, "generated_at": _now().isoformat(),
         "customer_ids": sorted(customer_ids), "tables": tables}, default=str, indent=1)
    # Created 0600 from the start; O_NOFOLLOW: a symlink planted under that name is not followed.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(body)
    return path


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


# --------------------------------------------------------------------------------------------
# Batched execution: every new request of a run together, one pass per table.
#
# Temp tables, built once per run from all valid requests:
#   _privacy_batch(position, request_id, action, identifier_type, identifier_value)
#   _privacy_request_customers(request_id, customer_id)            the clusters' profiles
#   _privacy_request_identifiers(request_id, identifier_type, identifier_value)
#   _privacy_request_values(request_id, value)                      identifiers and customer ids
# Each table is scanned once for the values of all requests; the matching rows are then joined
# back to the values to credit each request with the rows that hold one of *its* values (two
# requests of one person are both credited with the same rows).

BATCH = "_privacy_batch"
REQUEST_CUSTOMERS = "_privacy_request_customers"
REQUEST_IDENTIFIERS = "_privacy_request_identifiers"
REQUEST_VALUES = "_privacy_request_values"


def load_batch(con: duckdb.DuckDBPyConnection, requests: Sequence[dict[str, Any]]) -> None:
    """The valid requests and their whole clusters as temp tables (two statements resolve all)."""
    con.execute(f"create or replace temp table {BATCH} (position integer, request_id varchar, "
                "action varchar, identifier_type varchar, identifier_value varchar)")
    if requests:
        con.execute(
            f"insert into {BATCH} select unnest(?::integer[]), unnest(?::varchar[]), "
            "unnest(?::varchar[]), unnest(?::varchar[]), unnest(?::varchar[])",
            [list(range(len(requests))), [r["request_id"] for r in requests],
             [request_action(r["request_type"]) for r in requests],
             [r["identifier_type"] for r in requests], [r["identifier_value"] for r in requests]])
    own = (f"select request_id, coalesce(identifier_type, 'unknown') as identifier_type, "
           f"identifier_value from {BATCH}")
    if _relation_exists(con, "main_marts", "customer_identities"):
        con.execute(f"""
            create or replace temp table {REQUEST_CUSTOMERS} as
            select distinct b.request_id, i.customer_id
            from {BATCH} as b
            inner join main_marts.customer_identities as i
                on i.identifier_value = b.identifier_value
                and (i.identifier_type = b.identifier_type or b.identifier_type is null)""")
        con.execute(f"""
            create or replace temp table {REQUEST_IDENTIFIERS} as
            {own}
            union
            select c.request_id, i.identifier_type, i.identifier_value
            from {REQUEST_CUSTOMERS} as c
            inner join main_marts.customer_identities as i on i.customer_id = c.customer_id""")
    else:
        con.execute(f"create or replace temp table {REQUEST_CUSTOMERS} "
                    "(request_id varchar, customer_id varchar)")
        con.execute(f"create or replace temp table {REQUEST_IDENTIFIERS} as {own}")
    con.execute(f"""
        create or replace temp table {REQUEST_VALUES} as
        select request_id, identifier_value as value from {REQUEST_IDENTIFIERS}
        where coalesce(identifier_value, '') <> ''
        union
        select request_id, customer_id from {REQUEST_CUSTOMERS}
        where coalesce(customer_id, '') <> ''""")


def _restrict(con: duckdb.DuckDBPyConnection, actions: Sequence[str]) -> tuple[str, str]:
    """Values and customers of the batch's requests with one of `actions`, as temp tables."""
    name = "_".join(actions)
    values, customers = f"_privacy_values_{name}", f"_privacy_customers_{name}"
    for target, source in ((values, REQUEST_VALUES), (customers, REQUEST_CUSTOMERS)):
        con.execute(f"create or replace temp table {target} as select * from {source} "
                    f"where request_id in (select request_id from {BATCH} "
                    "where list_contains(?, action))", [list(actions)])
    return values, customers


def _match_rows(con: duckdb.DuckDBPyConnection, relation: str, columns: Sequence[str],
                values: str, row_key: str, all_columns: bool = False) -> int:
    """Rows of `relation` with a value of `values` in one of `columns`, in one scan.

    Leaves `_privacy_hits` (__privacy_row = `row_key`, the columns or every column) and
    `_privacy_matches` (request_id, __privacy_row): each hit row with every request one of
    whose values it holds. Returns the number of hit rows."""
    where = " or ".join(f"{_q(c)} in (select value from {values})" for c in columns)
    kept = "*" if all_columns else ", ".join(_q(c) for c in columns)
    con.execute(f"create or replace temp table _privacy_hits as select {row_key} as "
                f"__privacy_row, {kept} from {relation} where {where}")
    listed = ", ".join(f"cast({_q(c)} as varchar)" for c in columns)
    con.execute(f"""
        create or replace temp table _privacy_matches as
        select distinct v.request_id, h.__privacy_row
        from (select __privacy_row, unnest([{listed}]) as value from _privacy_hits) as h
        inner join {values} as v on v.value = h.value""")
    return con.execute("select count(*) from _privacy_hits").fetchone()[0]


def _rows_by_request(con: duckdb.DuckDBPyConnection,
                     sql: str) -> dict[str, list[dict[str, Any]]]:
    """Run `sql` (first column: request id) and group the other columns by request."""
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description][1:]
    found: dict[str, list[dict[str, Any]]] = {}
    for row in cursor.fetchall():
        found.setdefault(row[0], []).append(dict(zip(names, row[1:])))
    return found


def _match_records(con: duckdb.DuckDBPyConnection, source: IdentifiedSource, values: str,
                   customers: str) -> int:
    """`_privacy_records` (request_id, record_id): staged records of `source` carrying a value
    of a request or owned by one of its customers (batched `_matching_record_ids`)."""
    con.execute("create or replace temp table _privacy_found "
                "(request_id varchar, record_id varchar)")
    if _relation_exists(con, "main_staging", source.staging_model):
        _match_rows(con, f"main_staging.{_q(source.staging_model)}", source.identifier_columns,
                    values, f"cast({_q(source.staging_record_id)} as varchar)")
        con.execute("insert into _privacy_found select request_id, __privacy_row "
                    "from _privacy_matches")
    if _relation_exists(con, "main_marts", "customer_source_records"):
        con.execute(
            "insert into _privacy_found select c.request_id, s.source_record_id "
            "from main_marts.customer_source_records as s "
            f"inner join {customers} as c on c.customer_id = s.customer_id where s.source = ?",
            [source.source])
    con.execute("create or replace temp table _privacy_records as "
                "select distinct * from _privacy_found where record_id is not null")
    return con.execute("select count(*) from _privacy_records").fetchone()[0]


def access_export_batch(con: duckdb.DuckDBPyConnection, sources: Sequence[IdentifiedSource]
                        ) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Every row held about each access request's cluster, `{request_id: {table: rows}}`:
    raw rows by record id, every other table and view by value; one scan per table."""
    values, customers = _restrict(con, ["access"])
    exports: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for source in sources:
        if not _relation_exists(con, "raw", source.source) or not _match_records(
                con, source, values, customers):
            continue
        found = _rows_by_request(
            con, "select r.request_id as __privacy_request_id, "
            "t.* exclude (__privacy_record_id) from (select cast("
            f"{source.raw_record_id_sql} as varchar) as __privacy_record_id, * "
            f"from {source.raw_table}) as t inner join _privacy_records as r "
            "on t.__privacy_record_id = r.record_id order by r.request_id")
        for request_id, rows in found.items():
            exports.setdefault(request_id, {})[f"raw.{source.source}"] = rows
    for schema, table, columns in _access_tables(con):
        if not _match_rows(con, f"{_q(schema)}.{_q(table)}", columns, values,
                           "row_number() over ()", all_columns=True):
            continue
        found = _rows_by_request(
            con, "select m.request_id as __privacy_request_id, h.* exclude (__privacy_row) "
            "from _privacy_hits as h inner join _privacy_matches as m using (__privacy_row) "
            "order by m.request_id, h.__privacy_row")
        for request_id, rows in found.items():
            exports.setdefault(request_id, {})[f"{schema}.{table}"] = rows
    return exports


def _access_tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, list[str]]]:
    """(schema, table, varchar columns) of every table and view outside raw and privacy."""
    return con.execute(
        "select t.table_schema, t.table_name, list(c.column_name) "
        "from information_schema.tables t "
        "join information_schema.columns c on c.table_schema = t.table_schema "
        "and c.table_name = t.table_name and c.table_catalog = t.table_catalog "
        "where t.table_catalog = current_database() and c.data_type = 'VARCHAR' "
        "and t.table_schema not in ('raw', 'privacy', 'information_schema', 'pg_catalog') "
        "group by all order by all").fetchall()


def _credit(results: dict[str, list[TargetResult]], rows: Iterable[tuple[str, int]],
            target: str, action: str) -> None:
    for request_id, count in rows:
        results.setdefault(request_id, []).append(TargetResult(target, action, int(count)))


def erase_raw_batch(con: duckdb.DuckDBPyConnection, sources: Sequence[IdentifiedSource],
                    values: str, customers: str) -> dict[str, list[TargetResult]]:
    """Batched `erase_raw`: one scan, one delete (or PII update) per raw table for all erasures."""
    results: dict[str, list[TargetResult]] = {}
    con.execute("create or replace temp table _privacy_lines (request_id varchar, "
                "source varchar, _source_file varchar, _source_line bigint)")
    for source in sources:
        if source.source == "privacy_requests" or not _relation_exists(con, "raw", source.source):
            continue
        if not _match_records(con, source, values, customers):
            continue
        con.execute(
            "create or replace temp table _privacy_raw_hits as select rowid as __privacy_row, "
            f"cast({source.raw_record_id_sql} as varchar) as record_id, _source_file, "
            f"_source_line from {source.raw_table} where cast({source.raw_record_id_sql} "
            "as varchar) in (select record_id from _privacy_records)")
        con.execute("insert into _privacy_lines select distinct r.request_id, ?, h._source_file, "
                    "h._source_line from _privacy_raw_hits as h "
                    "inner join _privacy_records as r using (record_id)", [source.source])
        counts = con.execute(
            "select r.request_id, count(distinct h.__privacy_row) from _privacy_records as r "
            "left join _privacy_raw_hits as h using (record_id) group by 1 order by 1").fetchall()
        rows = "rowid in (select __privacy_row from _privacy_raw_hits)"
        if source.source in NULL_PII_COLUMNS:
            sets = ", ".join(f"{_q(c)} = null" for c in NULL_PII_COLUMNS[source.source])
            con.execute(f"update {source.raw_table} set {sets} where {rows}")
            _credit(results, counts, f"raw.{source.source}", "null_pii")
        else:
            con.execute(f"delete from {source.raw_table} where {rows}")
            _credit(results, counts, f"raw.{source.source}", "delete")
    if _relation_exists(con, "raw", "_load_rejects"):
        con.execute(
            "create or replace temp table _privacy_reject_hits as select r.rowid as "
            "__privacy_row, r.source, r._source_file, r._source_line, "
            "lower(trim(r.raw_value)) as value from raw._load_rejects as r "
            "where exists (select 1 from _privacy_lines as l where l.source = r.source "
            "and l._source_file = r._source_file and l._source_line = r._source_line) "
            f"or lower(trim(r.raw_value)) in (select lower(value) from {values})")
        counts = dict(con.execute(f"""
            select request_id, count(distinct __privacy_row) from (
                select l.request_id, h.__privacy_row from _privacy_reject_hits as h
                inner join _privacy_lines as l using (source, _source_file, _source_line)
                union all
                select v.request_id, h.__privacy_row from _privacy_reject_hits as h
                inner join {values} as v on lower(v.value) = h.value
            ) group by 1""").fetchall())
        con.execute("delete from raw._load_rejects where rowid in "
                    "(select __privacy_row from _privacy_reject_hits)")
        erasures = [r[0] for r in con.execute(
            f"select request_id from {BATCH} where action = 'erase' order by position"
        ).fetchall()]
        _credit(results, [(r, counts.get(r, 0)) for r in erasures], "raw._load_rejects",
                "delete")
    return results


def scrub_derived_batch(con: duckdb.DuckDBPyConnection,
                        values: str) -> dict[str, list[TargetResult]]:
    """Batched `scrub_derived`: one scan and one delete per derived table for all requests."""
    results: dict[str, list[TargetResult]] = {}
    for schema, table, columns in derived_tables(con):
        relation = f"{_q(schema)}.{_q(table)}"
        if not _match_rows(con, relation, columns, values, "rowid"):
            continue
        _credit(results, con.execute("select request_id, count(*) from _privacy_matches "
                                     "group by 1 order by 1").fetchall(),
                f"{schema}.{table}", "delete")
        con.execute(f"delete from {relation} where rowid in "
                    "(select __privacy_row from _privacy_hits)")
    return results


def _add_to_suppression_batch(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Hashes of every erase/suppress cluster on the suppression list, each hash once per
    action (credited to the first request holding it); returns the cluster size per request."""
    con.execute(f"""
        insert into {SUPPRESSION}
        select identifier_hash, identifier_type, action, request_id, ? from (
            select
                sha256(? || i.identifier_value) as identifier_hash,
                i.identifier_type,
                b.action,
                i.request_id,
                row_number() over (
                    partition by b.action, sha256(? || i.identifier_value), i.identifier_type
                    order by b.position
                ) as n
            from {REQUEST_IDENTIFIERS} as i
            inner join {BATCH} as b using (request_id)
            where b.action in ('erase', 'suppress') and coalesce(i.identifier_value, '') <> ''
        ) as new
        where n = 1 and not exists (
            select 1 from {SUPPRESSION} as s
            where s.identifier_hash = new.identifier_hash
                and s.suppression_action = new.action
        )""", [_now(), salt(), salt()])
    return dict(con.execute(
        f"select request_id, count(*) from {REQUEST_IDENTIFIERS} group by 1").fetchall())


def _hash_batch_identifiers(con: duckdb.DuckDBPyConnection, erase_values: str | None,
                            actions: Sequence[str]) -> dict[str, int]:
    """Hash in raw.privacy_requests the identifiers of the batch's requests with `actions` and,
    for erasures, of every request of the person; returns rows per erasure (its cluster)."""
    if not _relation_exists(con, "raw", "privacy_requests") or not _relation_exists(
            con, "main_staging", "stg_privacy__requests"):
        return {}
    counts: dict[str, int] = {}
    matched = (f"s.identifier_value in (select identifier_value from {BATCH} "
               "where list_contains(?, action))")
    if erase_values:
        counts = dict(con.execute(
            "select v.request_id, count(distinct p.rowid) from raw.privacy_requests as p "
            "inner join main_staging.stg_privacy__requests as s on s.request_id = p.request_id "
            f"inner join {erase_values} as v on v.value = s.identifier_value group by 1"
        ).fetchall())
        matched += f" or s.identifier_value in (select value from {erase_values})"
    con.execute(
        f"update raw.privacy_requests set identifier_value = '{HASH_PREFIX}' || "
        "sha256(? || s.identifier_value) from main_staging.stg_privacy__requests s "
        f"where s.request_id = privacy_requests.request_id and ({matched})",
        [salt(), list(actions)])
    return counts


def _pending_removals_batch(con: duckdb.DuckDBPyConnection,
                            customers_by_request: dict[str, list[str]]
                            ) -> dict[str, list[TargetResult]]:
    """Batched `pending_destination_removals`: one query over the sync state."""
    if not _relation_exists(con, "activation", "sync_state"):
        return {}
    results: dict[str, list[TargetResult]] = {}
    for request_id, sync_name, count in con.execute(
            "select c.request_id, s.sync_name, count(*) from activation.sync_state as s "
            f"inner join {REQUEST_CUSTOMERS} as c on c.customer_id = s.row_key "
            f"where c.request_id in (select request_id from {BATCH} "
            "where action in ('erase', 'suppress')) group by 1, 2 order by 1, 2").fetchall():
        hashes = json.dumps(sorted(identifier_hash(c) for c in customers_by_request[request_id]))
        results.setdefault(request_id, []).append(TargetResult(
            f"activation:{sync_name}", "destination_removal", count, "running", hashes))
    return results


def _write_logs(con: duckdb.DuckDBPyConnection, started: dt.datetime,
                targets_by_request: dict[str, list[TargetResult]]) -> None:
    """`_write_log` for many requests in one insert."""
    rows = [(request_id, t) for request_id, targets in targets_by_request.items()
            for t in targets]
    if not rows:
        return
    now = _now()
    columns = list(zip(*[(r, t.target, t.action, t.status, t.rows_affected, started,
                          now if t.status == "finished" else None, t.detail) for r, t in rows]))
    con.execute(
        f"insert into {LOG} select unnest(?::varchar[]), unnest(?::varchar[]), "
        "unnest(?::varchar[]), unnest(?::varchar[]), unnest(?::bigint[]), "
        "unnest(?::timestamp[]), unnest(?::timestamp[]), unnest(?::varchar[])",
        [list(c) for c in columns])


def _finish_requests(con: duckdb.DuckDBPyConnection,
                     targets_by_request: dict[str, list[TargetResult]]) -> dict[str, str]:
    """Status, cluster sizes and processed_at of the batch's requests, in one update."""
    statuses = {r: "partial" if any(t.status != "finished" for t in targets) else "finished"
                for r, targets in targets_by_request.items()}
    con.execute(f"""
        update {REQUESTS} set
            status = d.status,
            customers_in_cluster = d.customers,
            identifiers_in_cluster = d.identifiers,
            processed_at = ?
        from (
            select
                r.request_id,
                r.status,
                (select count(*) from {REQUEST_CUSTOMERS} as c
                 where c.request_id = r.request_id) as customers,
                (select count(*) from {REQUEST_IDENTIFIERS} as i
                 where i.request_id = r.request_id) as identifiers
            from (select unnest(?::varchar[]) as request_id,
                         unnest(?::varchar[]) as status) as r
        ) as d
        where d.request_id = {REQUESTS}.request_id""",
                [_now(), list(statuses), list(statuses.values())])
    return statuses


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Commit the block's changes, or roll them all back and re-raise."""
    con.execute("begin transaction")
    try:
        yield
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def _customers_by_request(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    return dict(con.execute(f"select request_id, list(customer_id) from {REQUEST_CUSTOMERS} "
                            "group by 1").fetchall())


def _in_order(con: duckdb.DuckDBPyConnection, action_filter: str) -> list[str]:
    return [r[0] for r in con.execute(
        f"select request_id from {BATCH} where {action_filter} order by position").fetchall()]


def execute_access_batch(con: duckdb.DuckDBPyConnection, sources: Sequence[IdentifiedSource],
                         started: dt.datetime) -> list[RequestOutcome]:
    """Every access request of the batch: one scan per table, one JSON file per request."""
    request_ids = _in_order(con, "action = 'access'")
    if not request_ids:
        return []
    customers = _customers_by_request(con)
    with _transaction(con):
        exports = access_export_batch(con, sources)
        targets: dict[str, list[TargetResult]] = {}
        paths = {}
        for request_id in request_ids:
            export = exports.get(request_id, {})
            paths[request_id] = _write_export(request_id, customers.get(request_id, []), export)
            targets[request_id] = [TargetResult("export", "export",
                                                sum(map(len, export.values())),
                                                detail=str(paths[request_id]))]
        _hash_batch_identifiers(con, None, ["access"])
        _write_logs(con, started, targets)
        statuses = _finish_requests(con, targets)
    return [RequestOutcome(r, "access", statuses[r], targets[r], paths[r]) for r in request_ids]


def execute_erasure_batch(con: duckdb.DuckDBPyConnection, sources: Sequence[IdentifiedSource],
                          started: dt.datetime) -> list[RequestOutcome]:
    """Every erase and suppress request of the batch in one transaction."""
    request_ids = _in_order(con, "action in ('erase', 'suppress')")
    if not request_ids:
        return []
    actions = dict(con.execute(f"select request_id, action from {BATCH}").fetchall())
    customers = _customers_by_request(con)
    with _transaction(con):
        all_values, _ = _restrict(con, ["erase", "suppress"])
        erase_values, erase_customers = _restrict(con, ["erase"])
        suppressed = _add_to_suppression_batch(con)
        raw = erase_raw_batch(con, sources, erase_values, erase_customers)
        hashed = _hash_batch_identifiers(con, erase_values, ["erase", "suppress"])
        derived = scrub_derived_batch(con, all_values)
        removals = _pending_removals_batch(con, customers)
        targets: dict[str, list[TargetResult]] = {}
        for request_id in request_ids:
            found = [TargetResult(SUPPRESSION, "suppress", suppressed.get(request_id, 0))]
            if actions[request_id] == "erase":
                found += raw.get(request_id, [])
                found.append(TargetResult("raw.privacy_requests", "hash_identifier",
                                          hashed.get(request_id, 0)))
            found += derived.get(request_id, []) + removals.get(request_id, [])
            targets[request_id] = found
        _write_logs(con, started, targets)
        statuses = _finish_requests(con, targets)
    return [RequestOutcome(r, actions[r], statuses[r], targets[r]) for r in request_ids]


def _register_requests(con: duckdb.DuckDBPyConnection,
                       requests: Sequence[dict[str, Any]]) -> None:
    """`_register_request` for every request in one insert (status running)."""
    if not requests:
        return
    con.execute(
        f"insert into {REQUESTS} select unnest(?::varchar[]), unnest(?::varchar[]), "
        "unnest(?::varchar[]), unnest(?::varchar[]), unnest(?::varchar[]), "
        "unnest(?::timestamp[]), 'running', null, null, null, null",
        [[r["request_id"] for r in requests], [r["request_type"] for r in requests],
         [request_action(r["request_type"]) for r in requests],
         [r["identifier_type"] for r in requests],
         [identifier_hash(r["identifier_value"]) if r["identifier_value"] else None
          for r in requests], [r["received_at"] for r in requests]])


def execute_batch(con: duckdb.DuckDBPyConnection, requests: Sequence[dict[str, Any]],
                  sources: Sequence[IdentifiedSource],
                  log: Callable[[str], None] = lambda message: None) -> list[RequestOutcome]:
    """Execute new requests together: invalid ones fail alone, access requests are exported in
    one pass, erase and suppress requests run in one transaction. If a batch fails it is rolled
    back and its requests run one by one (`execute_request`'s path), so one bad request cannot
    block the others."""
    started = _now()
    _register_requests(con, requests)
    outcomes: dict[str, RequestOutcome] = {}
    valid = []
    for request in requests:
        reason = _invalid_reason(request)
        if reason:
            outcomes[request["request_id"]] = _record_failure(
                con, request["request_id"], request_action(request["request_type"]), started,
                reason, "validate")
        else:
            valid.append(request)
    load_batch(con, valid)
    for group, runner in (("access", execute_access_batch),
                          ("erase and suppress", execute_erasure_batch)):
        try:
            done = runner(con, sources, started)
        except Exception as error:
            log(f"batch of {group} requests failed ({error}); executing them one by one")
            kinds = ("access",) if group == "access" else ("erase", "suppress")
            done = [_execute_registered(con, r, sources, started) for r in valid
                    if request_action(r["request_type"]) in kinds]
        outcomes.update({o.request_id: o for o in done})
    return [outcomes[r["request_id"]] for r in requests]


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
    outcomes = execute_batch(con, new_requests(con), sources, log)
    for outcome in outcomes:
        log(f"request {outcome.request_id} ({outcome.action}): {outcome.status}")
    if _relation_exists(con, "raw", "privacy_requests"):  # a re-delivered request file
        rehashed = con.execute(
            f"update raw.privacy_requests set identifier_value = '{HASH_PREFIX}' || "
            "sha256(? || s.identifier_value) from main_staging.stg_privacy__requests s "
            "where s.request_id = privacy_requests.request_id "
            f"and s.request_id in (select request_id from {REQUESTS}) "
            f"and not starts_with(privacy_requests.identifier_value, '{HASH_PREFIX}')", [salt()]
        ).fetchone()[0]
        if rehashed:  # logged so the compaction that follows removes the plain values' bytes
            _write_log(con, "late_data", _now(), [TargetResult(
                "raw.privacy_requests", "hash_identifier", int(rehashed))])
    forget_erased_payloads(con, salt())  # the sync state keeps keys only for them
    finished = refresh_destination_removals(con)
    _forget_erased_phone_spellings(con)
    con.execute("select 1").fetchall()  # leave no unfetched result on the caller's connection
    return PrivacyRunReport(outcomes, late, finished)


def _forget_erased_phone_spellings(con: duckdb.DuckDBPyConnection) -> None:
    """The phone lookup keeps raw spellings: the ones no raw row holds any more (erased) leave."""
    from orchestration.phones import refresh_phone_numbers

    if _relation_exists(con, "raw", "_phone_numbers"):
        refresh_phone_numbers(con)


def purge_late_rows_at_load(con: duckdb.DuckDBPyConnection,
                            project_file: Path | None = None) -> int:
    """At load: late rows of erased people, in any spelling, purged before anything reads them.

    Matching uses dbt's own normalisation: the staging views (already built over raw) give each
    new raw row's normalised identifiers (mailbox, E.164 phone from raw._phone_numbers), and
    `purge_suppressed` compares them with the suppression list. Before the first dbt run there
    are no staging views and nothing was erased yet: nothing to do."""
    if not _relation_exists(con, SCHEMA, "suppression_list") or not _relation_exists(
            con, "main_staging", "stg_privacy__requests"):
        return 0
    late = purge_suppressed(con, identified_sources(project_file))
    if late:
        _forget_erased_phone_spellings(con)
    return sum(t.rows_affected for t in late if t.target.startswith("raw."))


def find_traces(con: duckdb.DuckDBPyConnection, values: Iterable[str],
                skip: Sequence[tuple[str, str]] = ()) -> dict[str, int]:
    """Rows of any table or view, in any column cast to text, holding one of `values`:
    `{"schema.table.column": rows}`. Case-insensitive; values with letters (emails, ids) match
    inside longer text (JSON payloads), all-digit values (phones) only whole. For auditing.
    One query per relation (a view is computed once, not once per column)."""
    wanted = sorted({v.strip().lower() for v in values if v and v.strip()})
    if not wanted:
        return {}
    literals = ", ".join("'" + v.replace("'", "''") + "'" for v in wanted)
    inside = [v for v in wanted if any(ch.isalpha() for ch in v)]
    relations: dict[tuple[str, str], list[str]] = {}
    for schema, table, column in con.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where table_catalog = current_database() "
            "and table_schema not in ('information_schema', 'pg_catalog') order by all"
    ).fetchall():
        if (schema, table) not in skip:
            relations.setdefault((schema, table), []).append(column)
    found: dict[str, int] = {}
    for (schema, table), columns in relations.items():
        counts = []
        for column in columns:
            text = f"lower(cast({_q(column)} as varchar))"
            match = " or ".join([f"trim({text}) in ({literals})"] + [
                f"contains({text}, '{v.replace(chr(39), chr(39) * 2)}')" for v in inside])
            counts.append(f"count(*) filter (where {match})")
        row = con.execute(f"select {', '.join(counts)} from {_q(schema)}.{_q(table)}"
                          ).fetchone()
        found |= {f"{schema}.{table}.{column}": count
                  for column, count in zip(columns, row) if count}
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
    dropped = con.execute(
        f"delete from raw.{_q(source_name)} where _source_file = ? and ({where})",
        [source_file, *[salt()] * len(candidates)]).fetchone()[0]
    if dropped:  # logged so the next privacy run compacts the file (the rows reached its blocks)
        _write_log(con, "late_data", _now(), [TargetResult(f"raw.{source_name}", "delete",
                                                           int(dropped))])
    return dropped


# --------------------------------------------------------------------------------------------
# After erasure: the bytes (compaction of the warehouse file, old serving snapshots)


def last_erasure_at(con: duckdb.DuckDBPyConnection) -> dt.datetime | None:
    """When personal data was last deleted or overwritten in the warehouse (UTC), if ever."""
    if not _relation_exists(con, SCHEMA, "privacy_request_log"):
        return None
    return con.execute(
        f"select max(coalesce(completed_at, started_at)) from {LOG} "
        f"where list_contains(?, action) and target <> ?",
        [list(ERASING_ACTIONS), COMPACTION_TARGET]).fetchone()[0]


def compaction_due(con: duckdb.DuckDBPyConnection) -> bool:
    """Data was erased after the warehouse file was last compacted (or it never was)."""
    erased = last_erasure_at(con)
    if erased is None:
        return False
    compacted = con.execute(f"select max(completed_at) from {LOG} where target = ?",
                            [COMPACTION_TARGET]).fetchone()[0]
    return compacted is None or compacted < erased


def _compact_after_erasure(warehouse: WarehouseResource,
                           context: dg.AssetExecutionContext) -> dict[str, Any]:
    """Compact the warehouse and drop serving snapshots built before the erasure; metadata.

    Runs with no connection open (this asset holds the warehouse pool, so no other asset has the
    file). A failure leaves the file as it was and is retried by the next run."""
    from orchestration.compaction import CompactionError, compact_warehouse
    from orchestration.serving.snapshot import remove_versions_before, snapshot_path

    started = _now()
    path = warehouse.resolved_path
    try:
        report = compact_warehouse(path)
    except (CompactionError, OSError) as error:
        context.log.error(f"warehouse compaction after erasure failed: {error}")
        return {"compaction": dg.MetadataValue.text(f"failed, retried next run: {error}")}
    with warehouse.connect() as con:
        _write_log(con, "compaction", started, [TargetResult(
            COMPACTION_TARGET, "compact", report.tables,
            detail=f"{report.bytes_before} -> {report.bytes_after} bytes in "
                   f"{report.seconds:.2f} s")])
    removed = remove_versions_before(snapshot_path(), started)
    context.log.info(f"warehouse compacted after erasure: {report.bytes_before:,} -> "
                     f"{report.bytes_after:,} bytes in {report.seconds:.2f} s; "
                     f"{len(removed)} earlier serving snapshot(s) removed")
    return {"compaction": dg.MetadataValue.text("done"),
            **{k: dg.MetadataValue.float(float(v)) if isinstance(v, float)
               else dg.MetadataValue.int(int(v)) for k, v in report.as_metadata().items()},
            "serving_snapshots_removed": dg.MetadataValue.int(len(removed))}


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
        compact = compaction_due(con)
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
    if compact:
        metadata.update(_compact_after_erasure(warehouse, context))
    return dg.MaterializeResult(metadata=metadata)


PRIVACY_ASSETS = [privacy_requests_executed]
