"""Data-subject requests: their types, the new ones of a run, and their identity clusters.

A batch is a set of temp tables built once from the requests it holds (one request is a batch of
one); every step of the executor reads them:
  _privacy_batch(position, request_id, action, identifier_type, identifier_value, typed)
  _privacy_request_customers(request_id, customer_id)            the clusters' profiles
  _privacy_request_identifiers(request_id, identifier_type, identifier_value)
  _privacy_request_values(request_id, value)                      identifiers and customer ids
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb

from orchestration.catalog import catalog
from orchestration.privacy.audit import (
    HASH_PREFIX, REQUESTS, TargetResult, identifier_hash, now, relation_exists, salt, write_log,
)
from orchestration.privacy.sources import request_table

ERASE_TYPES = frozenset({"erasure", "erase", "deletion", "delete", "suppress_and_delete"})
SUPPRESS_TYPES = frozenset({"suppression", "suppress", "suppress_only", "restriction",
                            "do_not_sell", "opt_out"})
ACCESS_TYPES = frozenset({"access", "export", "portability"})

BATCH = "_privacy_batch"
REQUEST_CUSTOMERS = "_privacy_request_customers"
REQUEST_IDENTIFIERS = "_privacy_request_identifiers"
REQUEST_VALUES = "_privacy_request_values"


def request_action(request_type: str | None) -> str | None:
    kind = (request_type or "").strip().lower()
    if kind in ERASE_TYPES:
        return "erase"
    if kind in SUPPRESS_TYPES:
        return "suppress"
    if kind in ACCESS_TYPES:
        return "access"
    return None


def invalid_reason(request: dict[str, Any]) -> str | None:
    """Why the request cannot be executed (unknown type, no identifier), or None."""
    if request_action(request["request_type"]) is None:
        return "unknown request type " + repr(request["request_type"])
    if not request["identifier_value"]:
        return "identifier missing or not valid for its type"
    return None


def staged_requests() -> str:
    return catalog().relation("stg_privacy__requests")


def new_requests(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Staged requests not executed before, oldest first."""
    if not relation_exists(con, staged_requests()):
        return []
    cursor = con.execute(
        "select request_id, identifier_type, identifier_value, request_type, received_at "
        f"from {staged_requests()} where request_id not in "
        f"(select request_id from {REQUESTS}) order by received_at, request_id")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def register_requests(con: duckdb.DuckDBPyConnection,
                      requests: Sequence[dict[str, Any]]) -> None:
    """A `privacy_requests_processed` row (status running) for every request, in one insert."""
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


def record_failure(con: duckdb.DuckDBPyConnection, request_id: str, started: Any,
                   reason: str, log_action: str) -> None:
    """The request failed: status, detail and a log row (target `request`)."""
    con.execute(f"update {REQUESTS} set status = 'failed', processed_at = ?, detail = ? "
                "where request_id = ?", [now(), reason[:500], request_id])
    write_log(con, request_id, started,
              [TargetResult("request", log_action, 0, "failed", reason[:500])])


@dataclass(frozen=True)
class BatchItem:
    """One identifier of a batch. `typed`: profiles holding it under its type only (a request);
    otherwise under any type (late data, whose type is the staged column it was found in)."""

    request_id: str
    action: str
    identifier_type: str | None
    identifier_value: str
    typed: bool = True


def items_of(requests: Iterable[dict[str, Any]]) -> list[BatchItem]:
    return [BatchItem(r["request_id"], str(request_action(r["request_type"])),
                      r["identifier_type"], r["identifier_value"]) for r in requests]


def load_batch(con: duckdb.DuckDBPyConnection, items: Sequence[BatchItem]) -> None:
    """The batch and its whole clusters as temp tables (two statements resolve them all)."""
    con.execute(f"create or replace temp table {BATCH} (position integer, request_id varchar, "
                "action varchar, identifier_type varchar, identifier_value varchar, "
                "typed boolean)")
    if items:
        con.execute(
            f"insert into {BATCH} select unnest(?::integer[]), unnest(?::varchar[]), "
            "unnest(?::varchar[]), unnest(?::varchar[]), unnest(?::varchar[]), "
            "unnest(?::boolean[])",
            [list(range(len(items))), [i.request_id for i in items], [i.action for i in items],
             [i.identifier_type for i in items], [i.identifier_value for i in items],
             [i.typed for i in items]])
    own = (f"select request_id, coalesce(identifier_type, 'unknown') as identifier_type, "
           f"identifier_value from {BATCH}")
    identities = catalog().relation("customer_identities")
    if relation_exists(con, identities):
        con.execute(f"""
            create or replace temp table {REQUEST_CUSTOMERS} as
            select distinct b.request_id, i.customer_id
            from {BATCH} as b
            inner join {identities} as i
                on i.identifier_value = b.identifier_value
                and (i.identifier_type = b.identifier_type or b.identifier_type is null
                     or not b.typed)""")
        con.execute(f"""
            create or replace temp table {REQUEST_IDENTIFIERS} as
            {own}
            union
            select c.request_id, i.identifier_type, i.identifier_value
            from {REQUEST_CUSTOMERS} as c
            inner join {identities} as i on i.customer_id = c.customer_id""")
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


def restrict(con: duckdb.DuckDBPyConnection, actions: Sequence[str]) -> tuple[str, str]:
    """Values and customers of the batch's requests with one of `actions`, as temp tables."""
    name = "_".join(actions)
    values, customers = f"_privacy_values_{name}", f"_privacy_customers_{name}"
    for target, source in ((values, REQUEST_VALUES), (customers, REQUEST_CUSTOMERS)):
        con.execute(f"create or replace temp table {target} as select * from {source} "
                    f"where request_id in (select request_id from {BATCH} "
                    "where list_contains(?, action))", [list(actions)])
    return values, customers


def request_ids(con: duckdb.DuckDBPyConnection, actions: Sequence[str]) -> list[str]:
    """The batch's requests with one of `actions`, in batch order."""
    return [r[0] for r in con.execute(
        f"select request_id from {BATCH} where list_contains(?, action) "
        "group by request_id order by min(position)", [list(actions)]).fetchall()]


def customers_by_request(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    return dict(con.execute(f"select request_id, list(customer_id) from {REQUEST_CUSTOMERS} "
                            "group by 1").fetchall())


def hash_request_identifiers(con: duckdb.DuckDBPyConnection, erase_values: str | None,
                             actions: Sequence[str]) -> dict[str, int]:
    """Hash in the raw request table the identifiers of the batch's requests with `actions`
    and, for erasures, of every request of the person; returns rows per erasure (its cluster)."""
    raw, staged = request_table(), staged_requests()
    if not relation_exists(con, raw) or not relation_exists(con, staged):
        return {}
    table = raw.split(".", 1)[1]
    counts: dict[str, int] = {}
    matched = (f"s.identifier_value in (select identifier_value from {BATCH} "
               "where list_contains(?, action))")
    if erase_values:
        counts = dict(con.execute(
            f"select v.request_id, count(distinct p.rowid) from {raw} as p "
            f"inner join {staged} as s on s.request_id = p.request_id "
            f"inner join {erase_values} as v on v.value = s.identifier_value group by 1"
        ).fetchall())
        matched += f" or s.identifier_value in (select value from {erase_values})"
    con.execute(
        f"update {raw} set identifier_value = '{HASH_PREFIX}' || "
        f"sha256(? || s.identifier_value) from {staged} s "
        f"where s.request_id = {table}.request_id and ({matched})",
        [salt(), list(actions)])
    return counts


def rehash_redelivered_requests(con: duckdb.DuckDBPyConnection) -> int:
    """A re-delivered request file: processed requests whose raw identifier is plain again."""
    raw, staged = request_table(), staged_requests()
    if not relation_exists(con, raw):
        return 0
    table = raw.split(".", 1)[1]
    return con.execute(
        f"update {raw} set identifier_value = '{HASH_PREFIX}' || "
        f"sha256(? || s.identifier_value) from {staged} s "
        f"where s.request_id = {table}.request_id "
        f"and s.request_id in (select request_id from {REQUESTS}) "
        f"and not starts_with({table}.identifier_value, '{HASH_PREFIX}')", [salt()]
    ).fetchone()[0]


@dataclass
class Cluster:
    """A person's profiles and every identifier they hold (for audits and tests)."""

    customer_ids: set[str] = field(default_factory=set)
    identifiers: set[tuple[str, str]] = field(default_factory=set)  # (type, normalised value)

    @property
    def values(self) -> set[str]:
        return {value for _, value in self.identifiers} | self.customer_ids


def resolve_cluster(con: duckdb.DuckDBPyConnection, identifier_type: str | None,
                    identifier_value: str | None) -> Cluster:
    """Every customer holding the identifier, and every identifier of those customers: the
    cluster the executor resolves for a request of that identifier (a batch of one)."""
    if not identifier_value:
        return Cluster()
    load_batch(con, [BatchItem("cluster", "access", identifier_type, identifier_value)])
    return Cluster(
        {r[0] for r in con.execute(f"select customer_id from {REQUEST_CUSTOMERS}").fetchall()},
        set(con.execute(f"select identifier_type, identifier_value from {REQUEST_IDENTIFIERS}"
                        ).fetchall()))
