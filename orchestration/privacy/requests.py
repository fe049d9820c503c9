"""Data-subject requests: their types, the new ones of a run, and their identity clusters.

A batch (`Batch`) is resolved once from the requests it holds (one request is a batch of one):
its items (request, action, identifier), each request's whole cluster of profiles
(`customer_identities`) and every identifier those profiles hold. Every step of the executor
reads it; the values go to the warehouse as query parameters, so the same SQL runs on DuckDB,
PostgreSQL and Spark.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestration.catalog import catalog
from orchestration.privacy.audit import (
    HASH_PREFIX, REQUESTS, TargetResult, identifier_hash, now, rewrite_rows, table_of, write_log,
)
from orchestration.privacy.sources import request_table
from orchestration.privacy.sql import Target, ident, placeholders, records, warehouse_of
from orchestration.warehouse.base import Warehouse

ERASE_TYPES = frozenset({"erasure", "erase", "deletion", "delete", "suppress_and_delete"})
SUPPRESS_TYPES = frozenset({"suppression", "suppress", "suppress_only", "restriction",
                            "do_not_sell", "opt_out"})
ACCESS_TYPES = frozenset({"access", "export", "portability"})
RECTIFY_TYPES = frozenset({"rectification", "rectify", "correction"})


def request_action(request_type: str | None) -> str | None:
    kind = (request_type or "").strip().lower()
    if kind in ERASE_TYPES:
        return "erase"
    if kind in SUPPRESS_TYPES:
        return "suppress"
    if kind in ACCESS_TYPES:
        return "access"
    if kind in RECTIFY_TYPES:
        return "rectify"
    return None


def invalid_reason(request: dict[str, Any]) -> str | None:
    """Why the request cannot be executed (unknown type, no identifier), or None."""
    if request_action(request["request_type"]) is None:
        return "unknown request type " + repr(request["request_type"])
    if not request["identifier_value"]:
        return "identifier missing or not valid for its type"
    if request_action(request["request_type"]) == "rectify":
        return rectification_problem(request.get("attribute"), request.get("new_value"),
                                     request.get("new_value_is_valid"))
    return None


def rectification_problem(attribute: str | None, new_value: str | None,
                          valid: bool | None = True) -> str | None:
    """Why a rectification's attribute/new_value cannot be applied (the attributes are the keys
    of dbt var survivorship; staging's new_value_is_valid says whether the value is one)."""
    attributes = sorted(catalog().var("survivorship"))
    if not attribute:
        return "rectification without attribute (one of: " + ", ".join(attributes) + ")"
    if attribute not in attributes:
        return (f"rectification of unknown attribute {attribute!r} (one of: "
                + ", ".join(attributes) + ")")
    if not new_value or valid is False:
        return f"rectification of {attribute}: new_value missing or not valid for the attribute"
    return None


def staged_requests() -> str:
    return catalog().relation("stg_privacy__requests")


RECTIFICATION_COLUMNS = {"attribute": "string", "new_value": "string",
                         "new_value_is_valid": "boolean"}


def new_requests(target: Target) -> list[dict[str, Any]]:
    """Staged requests not executed before, oldest first."""
    wh = warehouse_of(target)
    if not wh.exists(staged_requests()):
        return []
    # a staging view built before rectifications (no attribute/new_value yet) still serves
    present = {c.lower() for c in wh.columns(staged_requests())}
    optional = ", ".join(f"s.{c}" if c in present else f"cast(null as {wh.sql_type(kind)}) as {c}"
                         for c, kind in RECTIFICATION_COLUMNS.items())
    return records(
        wh, "select s.request_id, s.identifier_type, s.identifier_value, s.request_type, "
        f"{optional}, s.received_at from {staged_requests()} as s where not exists ("
        f"select 1 from {REQUESTS} as p where p.request_id = s.request_id) "
        "order by s.received_at, s.request_id")


def register_requests(target: Target, requests: Sequence[dict[str, Any]]) -> None:
    """A `privacy_requests_processed` row (status running) for every request, in one append."""
    if not requests:
        return
    warehouse_of(target).append(REQUESTS, table_of(REQUESTS, [{
        "request_id": r["request_id"], "request_type": r["request_type"],
        "action": request_action(r["request_type"]), "identifier_type": r["identifier_type"],
        "identifier_hash": identifier_hash(r["identifier_value"]) if r["identifier_value"]
        else None, "received_at": r["received_at"], "status": "running"} for r in requests]))


def record_failure(target: Target, request_id: str, started: Any, reason: str,
                   log_action: str) -> None:
    """The request failed: status, detail and a log row (target `request`)."""
    wh = warehouse_of(target)
    rewrite_rows(wh, REQUESTS, "request_id", {request_id: {
        "status": "failed", "processed_at": now(), "detail": reason[:500]}})
    write_log(wh, request_id, started,
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


@dataclass
class Batch:
    """A resolved batch: items in order, and per request its cluster's customers and
    identifiers (type, value), its own identifier included."""

    items: list[BatchItem]
    customers: dict[str, set[str]] = field(default_factory=dict)
    identifiers: dict[str, set[tuple[str, str]]] = field(default_factory=dict)

    def request_ids(self, actions: Sequence[str] | None = None) -> list[str]:
        """The requests with one of `actions` (all when None), in batch order."""
        return list(dict.fromkeys(i.request_id for i in self.items
                                  if actions is None or i.action in actions))

    def actions(self) -> dict[str, str]:
        return {r: next(i.action for i in self.items if i.request_id == r)
                for r in self.request_ids()}

    def values(self, actions: Sequence[str] | None = None) -> dict[str, set[str]]:
        """Per request: its identifiers' values and its customer ids (none empty)."""
        return {r: {v for _, v in self.identifiers.get(r, ()) if v}
                | {c for c in self.customers.get(r, ()) if c}
                for r in self.request_ids(actions)}

    def customers_of(self, actions: Sequence[str] | None = None) -> dict[str, set[str]]:
        return {r: set(self.customers.get(r, ())) for r in self.request_ids(actions)}


def items_of(requests: Iterable[dict[str, Any]]) -> list[BatchItem]:
    return [BatchItem(r["request_id"], str(request_action(r["request_type"])),
                      r["identifier_type"], r["identifier_value"]) for r in requests]


def load_batch(target: Target, items: Sequence[BatchItem]) -> Batch:
    """The batch and its whole clusters (two queries resolve them all)."""
    wh = warehouse_of(target)
    batch = Batch(list(items))
    for item in items:
        batch.customers.setdefault(item.request_id, set())
        batch.identifiers.setdefault(item.request_id, set()).add(
            (item.identifier_type or "unknown", item.identifier_value))
    identities = catalog().relation("customer_identities")
    wanted = sorted({i.identifier_value for i in items if i.identifier_value})
    if not wanted or not wh.exists(identities):
        return batch
    marks, params = placeholders(wanted, "v")
    holders = wh.rows(f"select identifier_type, identifier_value, customer_id from {identities} "
                      f"where identifier_value in ({marks})", params)
    for item in items:
        batch.customers[item.request_id] |= {
            customer for kind, value, customer in holders
            if value == item.identifier_value and (
                kind == item.identifier_type or item.identifier_type is None or not item.typed)}
    everyone = sorted(set().union(*batch.customers.values()))
    if everyone:
        marks, params = placeholders(everyone, "c")
        held: dict[str, set[tuple[str, str]]] = {}
        for customer, kind, value in wh.rows(
                f"select customer_id, identifier_type, identifier_value from {identities} "
                f"where customer_id in ({marks})", params):
            held.setdefault(customer, set()).add((kind, value))
        for request_id, customers in batch.customers.items():
            for customer in customers:
                batch.identifiers[request_id] |= held.get(customer, set())
    return batch


def rewrite_raw_requests(wh: Warehouse, column: str, values: dict[str, str | None]) -> None:
    """Rewrite the raw request table with `column` replaced for these request ids (a None value
    writes NULL): the hashed identifiers of processed requests, an erased person's corrections."""
    raw = request_table()
    if not values or not wh.exists(raw) or column not in wh.columns(raw):
        return
    cases, params = [], {}
    for i, (request_id, value) in enumerate(values.items()):
        params[f"r{i}"] = request_id
        if value is None:
            cases.append(f"when %(r{i})s then null")
        else:
            cases.append(f"when %(r{i})s then %(h{i})s")
            params[f"h{i}"] = value
    columns = [f"case request_id {' '.join(cases)} else {ident(wh, c)} end as {ident(wh, c)}"
               if c == column else ident(wh, c) for c in wh.columns(raw)]
    wh.replace_table_as(raw, f"select {', '.join(columns)} from {raw}", params)


def hash_request_identifiers(target: Target, batch: Batch, erase_values: dict[str, set[str]],
                             actions: Sequence[str]) -> dict[str, int]:
    """Hash in the raw request table the identifiers of the batch's requests with `actions`
    and, for erasures, of every request of the person; returns rows per erasure (its cluster)."""
    wh = warehouse_of(target)
    raw, staged = request_table(), staged_requests()
    if not wh.exists(raw) or not wh.exists(staged):
        return {}
    own = {i.identifier_value for i in batch.items if i.action in actions and i.identifier_value}
    erased = set().union(*erase_values.values()) if erase_values else set()
    wanted = sorted(own | erased)
    if not wanted:
        return {}
    marks, params = placeholders(wanted, "v")
    staged_rows = wh.rows(f"select request_id, identifier_value from {staged} "
                          f"where identifier_value in ({marks})", params)
    if not staged_rows:
        return {}
    marks, params = placeholders(sorted({r for r, _ in staged_rows}), "r")
    raw_rows = dict(wh.rows(f"select request_id, count(*) from {raw} "
                            f"where request_id in ({marks}) group by request_id", params))
    counts = {r: sum(int(raw_rows.get(s, 0)) for s, v in dict(staged_rows).items() if v in values)
              for r, values in erase_values.items()}
    rewrite_raw_requests(wh, "identifier_value",
                         {r: HASH_PREFIX + identifier_hash(v) for r, v in staged_rows})
    return {r: n for r, n in counts.items() if n}


def rehash_redelivered_requests(target: Target) -> int:
    """A re-delivered request file: processed requests whose raw identifier is plain again."""
    wh = warehouse_of(target)
    raw, staged = request_table(), staged_requests()
    if not wh.exists(raw) or not wh.exists(staged):
        return 0
    plain = wh.rows(
        f"select r.request_id, s.identifier_value from {raw} as r "
        f"inner join {staged} as s on s.request_id = r.request_id "
        f"inner join {REQUESTS} as p on p.request_id = r.request_id "
        f"where r.identifier_value not like '{HASH_PREFIX}%'")
    hashes = {r: HASH_PREFIX + identifier_hash(v) for r, v in plain if v is not None}
    rewrite_raw_requests(wh, "identifier_value", hashes)
    return sum(1 for r, v in plain if v is not None)


@dataclass
class Cluster:
    """A person's profiles and every identifier they hold (for audits and tests)."""

    customer_ids: set[str] = field(default_factory=set)
    identifiers: set[tuple[str, str]] = field(default_factory=set)  # (type, normalised value)

    @property
    def values(self) -> set[str]:
        return {value for _, value in self.identifiers} | self.customer_ids


def resolve_cluster(target: Target, identifier_type: str | None,
                    identifier_value: str | None) -> Cluster:
    """Every customer holding the identifier, and every identifier of those customers: the
    cluster the executor resolves for a request of that identifier (a batch of one)."""
    if not identifier_value:
        return Cluster()
    batch = load_batch(target, [BatchItem("cluster", "access", identifier_type,
                                          identifier_value)])
    return Cluster(batch.customers["cluster"], batch.identifiers["cluster"])
