"""The steps of an erasure or suppression batch: suppression list, raw rows, derived rows.

Every step works on the resolved batch (orchestration/privacy/requests.py) with one scan and one
write per table, whatever the number of requests, and credits each request with the rows holding
one of its own values. Rows are removed with `delete_keys` (raw rows by file and line) or
`delete_where` (derived rows by value), columns blanked by rewriting them (`replace_table_as`):
the same calls on DuckDB, PostgreSQL and Spark (which has no row-level DML: there a delete
rewrites the table).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa

from orchestration.privacy.audit import (
    SUPPRESSION, TargetResult, identifier_hash, now, salt, table_of,
)
from orchestration.privacy.destinations import destination_removals
from orchestration.privacy.matching import (
    ValuesByRequest, credit, derived_tables, match_condition, match_records, match_rows,
)
from orchestration.privacy.rectification import forget_rectifications
from orchestration.privacy.requests import Batch, hash_request_identifiers
from orchestration.privacy.sources import (
    KEPT_FOR_ACCOUNTING, OWNED_OUTSIDE, OWNED_OUTSIDE_DETAIL, REQUEST_SOURCE, IdentifiedSource,
    load_rejects, raw_identifier_columns, request_table,
)
from orchestration.privacy.sql import (
    Target, ident, placeholders, text, value_relation, value_set, warehouse_of,
)
from orchestration.warehouse.base import Warehouse

Targets = dict[str, list[TargetResult]]
Line = tuple[str, str, int]  # source, _source_file, _source_line
RecordsByRequest = dict[str, set[tuple[str, str]]]  # request -> (source, staged record id)
# The columns of a derived table keyed by source record (`customer_source_records`, the names
# identity reads in `int_identity_record_names`): its rows go with an erased record.
RECORD_KEY = ("source", "source_record_id")


def _credit(results: Targets, counts: Mapping[str, int], target: str, action: str) -> None:
    for request_id in sorted(counts):
        results.setdefault(request_id, []).append(
            TargetResult(target, action, int(counts[request_id])))


def add_to_suppression(target: Target, batch: Batch) -> dict[str, int]:
    """Hashes of every erase/suppress cluster on the suppression list, each hash once per
    action (credited to the first request holding it); returns the cluster size per request."""
    wh = warehouse_of(target)
    actions = batch.actions()
    new: dict[tuple[str, str, str], str] = {}  # (action, hash, type) -> request
    for request_id in batch.request_ids(["erase", "suppress"]):
        for kind, value in sorted(batch.identifiers.get(request_id, ())):
            if value:
                new.setdefault((actions[request_id], identifier_hash(value, salt()), kind),
                               request_id)
    if new:
        marks, params = placeholders(sorted({h for _, h, _ in new}), "h")
        listed = set(wh.rows(f"select suppression_action, identifier_hash from {SUPPRESSION} "
                             f"where identifier_hash in ({marks})", params))
        added = now()
        rows = [{"identifier_hash": h, "identifier_type": kind, "suppression_action": action,
                 "request_id": request_id, "added_at": added}
                for (action, h, kind), request_id in new.items() if (action, h) not in listed]
        if rows:
            wh.append(SUPPRESSION, table_of(SUPPRESSION, rows))
    return {r: len(ids) for r, ids in batch.identifiers.items()}


def _erase_raw_table(wh: Warehouse, source: IdentifiedSource, found: dict[str, set[str]],
                     results: Targets, lines: dict[str, set[Line]]) -> None:
    """Delete (or null PII of) the raw rows of the found records; their lines to `lines`."""
    record_id = source.raw_record_id(wh)
    ids = sorted(set().union(*found.values()))
    marks, params = placeholders(ids, "r")
    hits = wh.rows(f"select {record_id} as record_id, _source_file, _source_line "
                   f"from {source.raw_table} where {record_id} in ({marks})", params)
    counts = {}
    for request_id, records in found.items():
        mine = {(f, int(n)) for r, f, n in hits if r in records}
        counts[request_id] = len(mine)
        lines.setdefault(request_id, set()).update((source.landing_name or source.source, f, n)
                                                   for f, n in mine)
    if source.source in KEPT_FOR_ACCOUNTING:
        pii = set(raw_identifier_columns(source.source))
        columns = [f"case when {record_id} in ({marks}) then null else {ident(wh, c)} end "
                   f"as {ident(wh, c)}" if c in pii else ident(wh, c)
                   for c in wh.columns(source.raw_table)]
        if hits:
            wh.replace_table_as(source.raw_table,
                                f"select {', '.join(columns)} from {source.raw_table}", params)
        _credit(results, counts, source.raw_table, "null_pii")
    else:
        keys = sorted({(f, int(n)) for _, f, n in hits})
        if keys:
            wh.delete_keys(source.raw_table, pa.table({
                "_source_file": pa.array([f for f, _ in keys], pa.string()),
                "_source_line": pa.array([n for _, n in keys], pa.int64())}))
        _credit(results, counts, source.raw_table, "delete")


def _erase_rejects(wh: Warehouse, values: ValuesByRequest, lines: dict[str, set[Line]],
                   results: Targets, erasures: Sequence[str]) -> None:
    """Rejected lines of the erased lines, and rejects whose raw value is an identifier."""
    rejects = load_rejects()
    if not wh.exists(rejects):
        return
    lowered = {r: {v.lower() for v in vs} for r, vs in values.items()}
    files = sorted({f for found in lines.values() for _, f, _ in found})
    file_marks, params = placeholders(files, "f")
    value_marks, value_params = placeholders(sorted(set().union(*lowered.values())
                                                    if lowered else set()), "v")
    rows = wh.rows(
        f"select source, _source_file, _source_line, lower(trim(raw_value)) from {rejects} "
        f"where _source_file in ({file_marks}) or lower(trim(raw_value)) in ({value_marks})",
        {**params, **value_params})
    hit: set[Line] = set()
    counts = {r: 0 for r in erasures}
    for source, file, line, value in rows:
        key = (source, file, int(line))
        mine = [r for r in erasures if key in lines.get(r, set())
                or value in lowered.get(r, set())]
        if mine:
            hit.add(key)
            for r in mine:
                counts[r] += 1
    if hit:
        keys = sorted(hit)
        wh.delete_keys(rejects, pa.table({
            "source": pa.array([k[0] for k in keys], pa.string()),
            "_source_file": pa.array([k[1] for k in keys], pa.string()),
            "_source_line": pa.array([k[2] for k in keys], pa.int64())}))
    _credit(results, counts, rejects, "delete")


def erase_raw(target: Target, sources: Sequence[IdentifiedSource], values: ValuesByRequest,
              customers: ValuesByRequest, erased: RecordsByRequest | None = None) -> Targets:
    """One scan and one delete (or PII rewrite) per raw table for every erasure of the batch,
    then the rejects of those lines. `erased` receives, per request, the (source, record id) of
    the records erased."""
    wh = warehouse_of(target)
    results: Targets = {}
    lines: dict[str, set[Line]] = {}
    with value_relation(wh, sorted(set().union(*values.values()) if values else ())) as listed:
        for source in sources:
            if source.owned_outside:  # the user's own table: listed, never deleted from
                found = match_records(wh, source, values, customers, listed)
                for request_id in sorted(values):
                    results.setdefault(request_id, []).append(TargetResult(
                        source.raw_table, OWNED_OUTSIDE, 0, detail=f"{OWNED_OUTSIDE_DETAIL}; "
                        f"{len(found.get(request_id, ()))} matching record(s)"))
                continue
            if source.source == REQUEST_SOURCE[1] or not wh.exists(source.raw_table):
                continue
            found = match_records(wh, source, values, customers, listed)
            if found:
                _erase_raw_table(wh, source, found, results, lines)
                if erased is not None:
                    for request_id, ids in found.items():
                        erased.setdefault(request_id, set()).update(
                            (source.source, i) for i in ids)
    _erase_rejects(wh, values, lines, results, list(values))
    return results


def record_condition(wh: Warehouse, keys: set[tuple[str, str]]) -> tuple[str, dict[str, object]]:
    """`(source = 's' and source_record_id in (...)) or ...` for the (source, record id) pairs."""
    by_source: dict[str, set[str]] = {}
    for source, record_id in keys:
        by_source.setdefault(source, set()).add(record_id)
    parts, params = [], {}
    column, record = (text(wh, ident(wh, c)) for c in RECORD_KEY)
    for i, (source, ids) in enumerate(sorted(by_source.items())):
        named, source_params = placeholders([source], f"s{i}_")
        wanted, id_params = value_set(sorted(ids), f"k{i}_")
        parts.append(f"({column} = {named} and {record} in {wanted})")
        params.update(source_params | id_params)
    return " or ".join(parts) or "false", params


def scrub_derived(target: Target, values: ValuesByRequest,
                  records: RecordsByRequest | None = None) -> Targets:
    """One scan and one delete per derived table holding a value of a request of `values`, or,
    in a table keyed by record (`RECORD_KEY`), a record erased from raw (`records`, per
    request): what a table keeps of a record without an identifier value (the name it gives)
    goes with the record."""
    wh = warehouse_of(target)
    results: Targets = {}
    keys = set().union(*records.values()) if records else set()
    wanted = set().union(*values.values()) if values else set()
    with value_relation(wh, sorted(wanted)) as listed:
        for schema, table, columns in derived_tables(wh):
            _scrub_table(wh, f"{schema}.{table}", columns, values, wanted, records or {}, keys,
                         listed, results)
    return results


def _scrub_table(wh: Warehouse, relation: str, columns: list[str], values: ValuesByRequest,
                 wanted: set[str], records: RecordsByRequest, keys: set[tuple[str, str]],
                 listed: tuple[str, dict[str, object]], results: Targets) -> None:
    """`scrub_derived` of one table: its matching rows credited, then deleted."""
    lowered = [c.lower() for c in columns]
    keyed = record_condition(wh, keys) if keys and set(RECORD_KEY) <= set(lowered) else None
    rows, matches = match_rows(wh, relation, columns, values, also=keyed, listed=listed)
    if not len(rows):
        return
    found = {r: set(p) for r, p in matches.items()}
    if keyed:  # rows of an erased record, credited once to each request that erased it
        pairs = zip(*(rows[f"__privacy_c{lowered.index(c)}"] for c in RECORD_KEY))
        for request_id, positions in credit([{pair} for pair in pairs], records).items():
            found.setdefault(request_id, set()).update(positions)
    _credit(results, {r: len(p) for r, p in found.items()}, relation, "delete")
    where, params = match_condition(wh, columns, wanted, keyed, listed)
    wh.delete_where(relation, where, params)


def erase_and_suppress(target: Target, batch: Batch, sources: Sequence[IdentifiedSource],
                       late_data: bool = False) -> Targets:
    """Every step of the batch's erase and suppress requests, in order: suppression list, raw
    rows of the erasures, request identifiers hashed, derived rows, pending destination
    removals. The log targets per request, in batch order. `late_data`: the batch is the purge
    of late rows (no request record to hash, the suppression list is not one of its targets)."""
    wh = warehouse_of(target)
    all_values = batch.values(["erase", "suppress"])
    erase_values = batch.values(["erase"])
    actions = batch.actions()
    suppressed = add_to_suppression(wh, batch)
    erased: RecordsByRequest = {}
    raw = erase_raw(wh, sources, erase_values, batch.customers_of(["erase"]), erased)
    corrections = forget_rectifications(wh, batch.customers_of(["erase"]))
    hashed = {} if late_data else hash_request_identifiers(wh, batch, erase_values,
                                                           ["erase", "suppress"])
    derived = scrub_derived(wh, all_values, erased)
    removals = destination_removals(wh, batch.customers_of(["erase", "suppress"]))
    targets: Targets = {}
    for request_id in batch.request_ids(["erase", "suppress"]):
        found = []
        if not late_data:
            found.append(TargetResult(SUPPRESSION, "suppress", suppressed.get(request_id, 0)))
        if actions[request_id] == "erase":
            found += raw.get(request_id, []) + corrections.get(request_id, [])
            if not late_data:
                found.append(TargetResult(request_table(), "hash_identifier",
                                          hashed.get(request_id, 0)))
        targets[request_id] = found + derived.get(request_id, []) + removals.get(request_id, [])
    return targets
