"""The steps of an erasure or suppression batch: suppression list, raw rows, derived rows.

Every step works on the loaded batch (orchestration/privacy/requests.py) with one scan and one
delete (or update) per table, whatever the number of requests, and credits each request with the
rows holding one of its own values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import duckdb

from orchestration.privacy.audit import SUPPRESSION, TargetResult, now, quote, relation_exists, salt
from orchestration.privacy.destinations import destination_removals
from orchestration.privacy.matching import derived_tables, match_records, match_rows
from orchestration.privacy.requests import (
    BATCH, REQUEST_IDENTIFIERS, hash_request_identifiers, request_ids, restrict,
)
from orchestration.privacy.sources import (
    KEPT_FOR_ACCOUNTING, REQUEST_SOURCE, IdentifiedSource, load_rejects, raw_identifier_columns,
    request_table,
)

Targets = dict[str, list[TargetResult]]


def _credit(results: Targets, rows: Iterable[tuple[str, int]], target: str,
            action: str) -> None:
    for request_id, count in rows:
        results.setdefault(request_id, []).append(TargetResult(target, action, int(count)))


def add_to_suppression(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
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
        )""", [now(), salt(), salt()])
    return dict(con.execute(
        f"select request_id, count(*) from {REQUEST_IDENTIFIERS} group by 1").fetchall())


def _erase_raw_table(con: duckdb.DuckDBPyConnection, source: IdentifiedSource,
                     results: Targets) -> None:
    """Delete (or null PII of) the raw rows of `_privacy_records`; their lines to
    `_privacy_lines`."""
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
    if source.source in KEPT_FOR_ACCOUNTING:
        sets = ", ".join(f"{quote(c)} = null" for c in raw_identifier_columns(source.source))
        con.execute(f"update {source.raw_table} set {sets} where {rows}")
        _credit(results, counts, source.raw_table, "null_pii")
    else:
        con.execute(f"delete from {source.raw_table} where {rows}")
        _credit(results, counts, source.raw_table, "delete")


def _erase_rejects(con: duckdb.DuckDBPyConnection, values: str, results: Targets) -> None:
    """Rejected lines of the erased lines, and rejects whose raw value is an identifier."""
    rejects = load_rejects()
    if not relation_exists(con, rejects):
        return
    con.execute(
        "create or replace temp table _privacy_reject_hits as select r.rowid as "
        "__privacy_row, r.source, r._source_file, r._source_line, "
        f"lower(trim(r.raw_value)) as value from {rejects} as r "
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
    con.execute(f"delete from {rejects} where rowid in "
                "(select __privacy_row from _privacy_reject_hits)")
    _credit(results, [(r, counts.get(r, 0)) for r in request_ids(con, ["erase"])],
            rejects, "delete")


def erase_raw(con: duckdb.DuckDBPyConnection, sources: Sequence[IdentifiedSource],
              values: str, customers: str) -> Targets:
    """One scan and one delete (or PII update) per raw table for every erasure of the batch,
    then the rejects of those lines."""
    results: Targets = {}
    con.execute("create or replace temp table _privacy_lines (request_id varchar, "
                "source varchar, _source_file varchar, _source_line bigint)")
    for source in sources:
        if source.source == REQUEST_SOURCE[1] or not relation_exists(con, source.raw_table):
            continue
        if match_records(con, source, values, customers):
            _erase_raw_table(con, source, results)
    _erase_rejects(con, values, results)
    return results


def scrub_derived(con: duckdb.DuckDBPyConnection, values: str) -> Targets:
    """One scan and one delete per derived table for every request of `values`."""
    results: Targets = {}
    for schema, table, columns in derived_tables(con):
        relation = f"{quote(schema)}.{quote(table)}"
        if not match_rows(con, relation, columns, values, "rowid"):
            continue
        _credit(results, con.execute("select request_id, count(*) from _privacy_matches "
                                     "group by 1 order by 1").fetchall(),
                f"{schema}.{table}", "delete")
        con.execute(f"delete from {relation} where rowid in "
                    "(select __privacy_row from _privacy_hits)")
    return results


def erase_and_suppress(con: duckdb.DuckDBPyConnection, sources: Sequence[IdentifiedSource],
                       late_data: bool = False) -> Targets:
    """Every step of the batch's erase and suppress requests, in order: suppression list, raw
    rows of the erasures, request identifiers hashed, derived rows, pending destination
    removals. The log targets per request, in batch order. `late_data`: the batch is the purge
    of late rows (no request record to hash, the suppression list is not one of its targets)."""
    all_values, all_customers = restrict(con, ["erase", "suppress"])
    erase_values, erase_customers = restrict(con, ["erase"])
    actions = dict(con.execute(f"select request_id, any_value(action) from {BATCH} "
                               "group by 1").fetchall())
    suppressed = add_to_suppression(con)
    raw = erase_raw(con, sources, erase_values, erase_customers)
    hashed = {} if late_data else hash_request_identifiers(con, erase_values,
                                                           ["erase", "suppress"])
    derived = scrub_derived(con, all_values)
    removals = destination_removals(con, all_customers)
    targets: Targets = {}
    for request_id in request_ids(con, ["erase", "suppress"]):
        found = []
        if not late_data:
            found.append(TargetResult(SUPPRESSION, "suppress", suppressed.get(request_id, 0)))
        if actions[request_id] == "erase":
            found += raw.get(request_id, [])
            if not late_data:
                found.append(TargetResult(request_table(), "hash_identifier",
                                          hashed.get(request_id, 0)))
        targets[request_id] = found + derived.get(request_id, []) + removals.get(request_id, [])
    return targets
