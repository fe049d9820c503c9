"""Finding a batch's people in a table: one scan per table for every request, rows credited back.

Each table is scanned once for the values of all requests in its text columns (the values
written once per step as a temporary relation, `sql.value_relation`); the matching rows are then credited in Python to each request holding
one of *its* values (two requests of one person are both credited with the same rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from orchestration.activation.state import STATE as SYNC_STATE
from orchestration.catalog import catalog
from orchestration.privacy.requests import Cluster
from orchestration.privacy.sources import (
    IdentifiedSource, not_derived_schemas, owned_outside_relations,
)
from orchestration.privacy.sql import (
    Target, ident, placeholders, text, text_columns, unreadable_relations, value_set,
    warehouse_of,
)
from orchestration.warehouse.base import Warehouse

# Tables outside those schemas that are not derived data: the activation state is what lets
# the next sync send the removal.
KEPT_TABLES = (tuple(SYNC_STATE.split(".", 1)),)

ValuesByRequest = Mapping[str, set[str]]


Listed = tuple[str, dict[str, Any]]  # a value set as `x in` takes it, and its parameters


def value_condition(wh: Warehouse, columns: Sequence[str], values: Iterable[str],
                    prefix: str = "v", listed: Listed | None = None) -> tuple[str, dict[str, Any]]:
    """`c1 in (...) or c2 in (...)` over the columns cast to text, and its parameters; `listed`:
    the values already as SQL (`value_relation`)."""
    wanted, params = listed or value_set(sorted(set(values)), prefix)
    return " or ".join(f"{text(wh, ident(wh, c))} in {wanted}" for c in columns), params


def match_condition(wh: Warehouse, columns: Sequence[str], values: Iterable[str],
                    also: tuple[str, dict[str, Any]] | None = None,
                    listed: Listed | None = None) -> tuple[str, dict[str, Any]]:
    """`value_condition`, or the SQL condition `also` (with its parameters)."""
    where, params = value_condition(wh, columns, values, listed=listed)
    if also:
        return f"coalesce({where}, false) or ({also[0]})", {**params, **also[1]}
    return where, params


def credit(row_values: Iterable[set[Any]], values: Mapping[str, set[Any]]
           ) -> dict[str, list[int]]:
    """Per request, the positions of the rows holding one of its values (through an index of
    value -> requests: one pass over the rows, whatever the number of requests)."""
    requests_of: dict[Any, list[str]] = {}
    for request_id, wanted in values.items():
        for value in wanted:
            requests_of.setdefault(value, []).append(request_id)
    found: dict[str, list[int]] = {}
    for n, held in enumerate(row_values):
        hit = {r for value in held for r in requests_of.get(value, ())}
        for request_id in hit:
            found.setdefault(request_id, []).append(n)
    return {r: found[r] for r in values if r in found}


def match_rows(wh: Warehouse, relation: str, columns: Sequence[str], values: ValuesByRequest,
               all_columns: bool = False, key: str | None = None,
               also: tuple[str, dict[str, Any]] | None = None, listed: Listed | None = None
               ) -> tuple[pd.DataFrame, dict[str, list[int]]]:
    """Rows of `relation` with a value of `values` in one of `columns` (or matching the SQL
    condition `also`, with its parameters), in one scan: the rows (the columns as text,
    `__privacy_c<i>`; `key` as text, `__privacy_key`; then every column when `all_columns`)
    and, per request, the positions of the rows holding one of its values."""
    wanted = set().union(*values.values()) if values else set()
    if (not wanted and not also) or not columns:
        return pd.DataFrame(), {}
    where, params = match_condition(wh, columns, wanted, also, listed)
    selected = ", ".join(f"{text(wh, ident(wh, c))} as __privacy_c{i}"
                         for i, c in enumerate(columns))
    if key:
        selected += f", {text(wh, ident(wh, key))} as __privacy_key"
    rows = wh.query(f"select {selected}{', *' if all_columns else ''} from {relation} "
                    f"where {where}", params)
    keys = [f"__privacy_c{i}" for i in range(len(columns))]
    held = [{v for v in row if isinstance(v, str)} for row in
            rows[keys].itertuples(index=False)] if len(rows) else []
    return rows, credit(held, values)


def match_records(target: Target, source: IdentifiedSource, values: ValuesByRequest,
                  customers: ValuesByRequest, listed: Listed | None = None
                  ) -> dict[str, set[str]]:
    """Per request, the staged record ids of `source` carrying one of its values or owned by
    one of its customers (`listed`: every request's values as SQL, `value_relation`)."""
    wh = warehouse_of(target)
    found: dict[str, set[str]] = {}
    if wh.exists(source.staging_relation):
        rows, matches = match_rows(wh, source.staging_relation, source.identifier_columns,
                                   values, key=source.staging_record_id, listed=listed)
        for request_id, positions in matches.items():
            found.setdefault(request_id, set()).update(
                v for v in rows["__privacy_key"].iloc[positions] if isinstance(v, str))
    elif source.raw_identifiers and not source.owned_outside and wh.exists(source.raw_table):
        for request_id, ids in _match_raw(wh, source, values).items():
            found.setdefault(request_id, set()).update(ids)
    records = catalog().relation("customer_source_records")
    everyone = set().union(*customers.values()) if customers else set()
    if everyone and wh.exists(records):
        marks, params = placeholders(sorted(everyone), "c")
        owned = wh.rows(f"select customer_id, source_record_id from {records} "
                        f"where source = %(source)s and customer_id in ({marks})",
                        {**params, "source": source.source})
        for request_id, mine in customers.items():
            ids = {str(record) for customer, record in owned
                   if customer in mine and record is not None}
            if ids:
                found.setdefault(request_id, set()).update(ids)
    return {r: ids for r, ids in found.items() if ids}


def _match_raw(wh: Warehouse, source: IdentifiedSource,
               values: ValuesByRequest) -> dict[str, set[str]]:
    """Per request, the raw record ids of a declared landing input whose staging view is not
    built yet: its declared identifier columns, lower-cased and trimmed, hold one of the values
    (emails and ids; a phone is found once staging gives its E.164 form)."""
    wanted = {v.lower() for vs in values.values() for v in vs}
    if not wanted:
        return {}
    marks, params = value_set(sorted(wanted), "v")
    spelled = [f"lower(trim({text(wh, ident(wh, c))}))" for c in source.raw_identifiers]
    rows = wh.rows(f"select {source.raw_record_id(wh)}, {', '.join(spelled)} from "
                   f"{source.raw_table} where " + " or ".join(f"{c} in {marks}" for c in spelled),
                   params)
    found: dict[str, set[str]] = {}
    for record_id, *held in rows:
        for request_id, mine in values.items():
            if record_id is not None and {v.lower() for v in mine} & set(held):
                found.setdefault(request_id, set()).add(str(record_id))
    return found


def _tables(wh: Warehouse, base_tables_only: bool,
            unreadable: list[tuple[str, str]] | None = None) -> list[tuple[str, str, list[str]]]:
    """(schema, table, text columns) of the tables (and views) outside raw and privacy."""
    return [(schema, table, columns)
            for schema, table, base, columns in text_columns(wh, not_derived_schemas(),
                                                             unreadable)
            if base or not base_tables_only]


def derived_tables(target: Target) -> list[tuple[str, str, list[str]]]:
    """(schema, table, text columns) of every base table but raw, privacy, sync state and the
    declared warehouse inputs' own relations (owned outside the CDP)."""
    owned = owned_outside_relations()
    return [(schema, table, columns)
            for schema, table, columns in _tables(warehouse_of(target), True)
            if (schema, table) not in KEPT_TABLES and (schema.lower(), table.lower()) not in owned]


def access_tables(target: Target) -> tuple[list[tuple[str, str, list[str]]],
                                           list[tuple[str, str]]]:
    """(schema, table, text columns) of every readable base table outside raw and privacy, and
    (relation, error) of those no query can read: one broken table leaves its rows out of an
    export, named, instead of failing every request. Views hold no rows of their own (what a
    staging view shows of a person is their raw rows, exported by record): reading them would
    recompute each over its tables for every batch."""
    wh = warehouse_of(target)
    unreadable: list[tuple[str, str]] = []
    tables = _tables(wh, True, unreadable)
    unreadable += unreadable_relations(wh, [f"{schema}.{table}" for schema, table, _ in tables])
    broken = {relation for relation, _ in unreadable}
    return [t for t in tables if f"{t[0]}.{t[1]}" not in broken], unreadable


def cluster_record_ids(target: Target, source: IdentifiedSource, cluster: Cluster) -> list[str]:
    """Staged record ids of `source` that belong to the cluster (for audits and tests)."""
    found = match_records(target, source, {"cluster": cluster.values},
                          {"cluster": set(cluster.customer_ids)})
    return sorted(found.get("cluster", set()))
