"""The suppression list at work: late rows of erased people purged, at load and on every run.

`privacy.suppression_list` holds salted SHA-256 hashes of every erased or suppressed identifier.
Data arriving later that carries an erased identifier is found through the staging views (dbt's
own normalisation) and erased with everything on those records, by the same executor steps as a
request (`request_id = 'late_data'` in the log).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from orchestration.ingestion.contract import landing_source_named
from orchestration.ingestion.schema import raw_table
from orchestration.privacy import steps
from orchestration.privacy.audit import SUPPRESSION, TargetResult, now, salt, write_log
from orchestration.privacy.requests import BatchItem, load_batch, staged_requests
from orchestration.privacy.sources import (
    REQUEST_SOURCE, IdentifiedSource, identified_sources, phone_lookup, raw_identifier_columns,
    raw_schema,
)
from orchestration.privacy.sql import Target, hash_sql, ident, text, warehouse_of
from orchestration.warehouse.base import Warehouse

LATE_DATA = "late_data"
_ERASED = f"(select identifier_hash from {SUPPRESSION} where suppression_action = 'erase')"


def _erased_hash_of(wh: Warehouse, expr: str) -> str:
    """`<salted hash of expr> in <erased hashes>` (the salt is the parameter `salt`)."""
    return f"{hash_sql(wh, '%(salt)s || ' + expr)} in {_ERASED}"


def _anything_erased(wh: Warehouse) -> bool:
    return bool(wh.scalar(f"select count(*) from {SUPPRESSION} "
                          "where suppression_action = 'erase'"))


def _late_identifiers(wh: Warehouse, sources: Sequence[IdentifiedSource]) -> list[BatchItem]:
    """Every identifier on a staged record that carries an erased one (a new device, a phone)."""
    found: set[tuple[str, str]] = set()
    for source in sources:
        if source.source == REQUEST_SOURCE[1] or not wh.exists(source.staging_relation):
            continue
        columns = source.identifier_columns
        suppressed = " or ".join(_erased_hash_of(wh, text(wh, ident(wh, c))) for c in columns)
        for row in wh.rows(
                f"select {', '.join(text(wh, ident(wh, c)) for c in columns)} from "
                f"{source.staging_relation} where {suppressed}", {"salt": salt()}):
            found |= {(column, value) for column, value in zip(columns, row)
                      if value is not None}
    return [BatchItem(LATE_DATA, "erase", column, value, typed=False)
            for column, value in sorted(found)]


def purge_suppressed(target: Target,
                     sources: Sequence[IdentifiedSource]) -> list[TargetResult]:
    """Late data: raw rows carrying an erased identifier are deleted with everything built on them.

    The records' customers (re-created from late rows) are erased as a cluster too, so an
    identifier that arrived together with an erased one (a new device) is not kept either."""
    wh = warehouse_of(target)
    if not _anything_erased(wh):
        return []
    items = _late_identifiers(wh, sources)
    if not items:
        return []
    with wh.transaction():
        batch = load_batch(wh, items)
        results = steps.erase_and_suppress(wh, batch, sources, late_data=True).get(LATE_DATA, [])
        write_log(wh, LATE_DATA, now(), results)
    return results


def _held_phone_pairs_sql(wh: Warehouse) -> str:
    """Every (phone text, country text or '') pair a raw row holds, one select per phone column
    of the dbt var `phone_numbers` and of the declared inputs (as orchestration/phones.py
    reads them)."""
    from orchestration.phones import (
        phone_column_relation, phone_columns, phone_rules, present_phone_columns_on,
    )

    selects = []
    for column in present_phone_columns_on(wh, phone_columns(phone_rules())):
        relation = phone_column_relation(column)
        country = f"coalesce({text(wh, ident(wh, column.country))}, '')" if column.country \
            else "''"
        where = f"{ident(wh, column.phone)} is not null"
        if column.type_column:
            where += f" and lower(trim({ident(wh, column.type_column)})) = 'phone'"
        selects.append(f"select {text(wh, ident(wh, column.phone))} as phone_raw, {country} "
                       f"as country_raw from {relation} where {where}")
    return " union all ".join(selects)


def _drop_unheld_phone_spellings(wh: Warehouse) -> None:
    """The lookup's pairs no raw row holds any more leave it (the lookup is only shrunk here:
    new pairs are the loader's)."""
    lookup, held = phone_lookup(), _held_phone_pairs_sql(wh)
    if not held:
        return
    gone = wh.rows(f"select p.phone_raw, p.country_raw from {lookup} as p where not exists "
                   f"(select 1 from ({held}) as r where r.phone_raw = p.phone_raw "
                   "and r.country_raw = p.country_raw)")
    if gone:
        wh.delete_keys(lookup, pa.table({
            "phone_raw": pa.array([g[0] for g in gone], pa.string()),
            "country_raw": pa.array([g[1] for g in gone], pa.string())}))


def forget_erased_phone_spellings(target: Target) -> None:
    """The phone lookup keeps raw spellings: the ones no raw row holds any more (erased) leave.
    On DuckDB the loader's own refresh does it; on the other engines (where orchestration/phones
    takes no session yet) the pairs no raw row holds are deleted here."""
    from orchestration.phones import refresh_phone_numbers

    wh = warehouse_of(target)
    if not wh.exists(phone_lookup()):
        return
    if wh.engine == "duckdb" and getattr(wh, "con", None) is not None:
        refresh_phone_numbers(wh.con)  # type: ignore[attr-defined]
    else:
        _drop_unheld_phone_spellings(wh)


def purge_late_rows_at_load(target: Target, project_file: Path | None = None) -> int:
    """At load: late rows of erased people, in any spelling, purged before anything reads them.

    Matching uses dbt's own normalisation: the staging views (already built over raw) give each
    new raw row's normalised identifiers (mailbox, E.164 phone from the phone lookup), and
    `purge_suppressed` compares them with the suppression list. Before the first dbt run there
    are no staging views and nothing was erased yet: nothing to do."""
    wh = warehouse_of(target)
    if not wh.exists(SUPPRESSION) or not wh.exists(staged_requests()):
        return 0
    late = purge_suppressed(wh, identified_sources(project_file))
    if late:
        forget_erased_phone_spellings(wh)
    return sum(t.rows_affected for t in late if t.target.startswith(raw_schema() + "."))


def drop_suppressed_rows(target: Target, source_name: str, source_file: str) -> int:
    """Delete the just-loaded rows of `source_file` that carry an erased identifier.

    Matches raw values lower-cased and trimmed (emails, ids) against the suppression hashes; the
    privacy asset's purge after dbt catches spellings only normalisation reveals (phones)."""
    wh = warehouse_of(target)
    if not wh.exists(SUPPRESSION) or source_name == REQUEST_SOURCE[1]:
        return 0
    candidates = raw_identifier_columns(source_name)
    if not candidates or not _anything_erased(wh):
        return 0
    where = " or ".join(_erased_hash_of(wh, f"lower(trim({text(wh, ident(wh, c))}))")
                        for c in candidates)
    table = raw_table(landing_source_named(source_name))
    lines = sorted({int(n) for (n,) in wh.rows(
        f"select _source_line from {table} where _source_file = %(file)s and ({where})",
        {"file": source_file, "salt": salt()})})
    if not lines:
        return 0
    dropped = wh.delete_keys(table, pa.table({
        "_source_file": pa.array([source_file] * len(lines), pa.string()),
        "_source_line": pa.array(lines, pa.int64())}))
    if dropped:  # logged so the next privacy run compacts the file (the rows reached its blocks)
        write_log(wh, LATE_DATA, now(), [TargetResult(table, "delete", int(dropped))])
    return dropped
