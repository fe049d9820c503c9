"""The suppression list at work: late rows of erased people purged, at load and on every run.

`privacy.suppression_list` holds salted SHA-256 hashes of every erased or suppressed identifier.
Data arriving later that carries an erased identifier is found through the staging views (dbt's
own normalisation) and erased with everything on those records, by the same executor steps as a
request (`request_id = 'late_data'` in the log).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb

from orchestration.catalog import catalog
from orchestration.ingestion.contract import SOURCES_BY_NAME
from orchestration.privacy import steps
from orchestration.privacy.audit import (
    SUPPRESSION, TargetResult, now, quote, relation_exists, salt, transaction, write_log,
)
from orchestration.privacy.requests import BatchItem, load_batch, staged_requests
from orchestration.privacy.sources import (
    REQUEST_SOURCE, IdentifiedSource, identified_sources, phone_lookup, raw_identifier_columns,
    raw_schema,
)

LATE_DATA = "late_data"
_ERASED = f"(select identifier_hash from {SUPPRESSION} where suppression_action = 'erase')"


def _late_identifiers(con: duckdb.DuckDBPyConnection,
                      sources: Sequence[IdentifiedSource]) -> list[BatchItem]:
    """Every identifier on a staged record that carries an erased one (a new device, a phone)."""
    found: set[tuple[str, str]] = set()
    for source in sources:
        if source.source == REQUEST_SOURCE[1] or not relation_exists(
                con, source.staging_relation):
            continue
        columns = source.identifier_columns
        suppressed = " or ".join(f"sha256(? || {quote(c)}) in {_ERASED}" for c in columns)
        for row in con.execute(
                f"select {', '.join(quote(c) for c in columns)} from "
                f"{source.staging_relation} where {suppressed}",
                [salt()] * len(columns)).fetchall():
            found |= {(column, value) for column, value in zip(columns, row)
                      if value is not None}
    return [BatchItem(LATE_DATA, "erase", column, value, typed=False)
            for column, value in sorted(found)]


def purge_suppressed(con: duckdb.DuckDBPyConnection,
                     sources: Sequence[IdentifiedSource]) -> list[TargetResult]:
    """Late data: raw rows carrying an erased identifier are deleted with everything built on them.

    The records' customers (re-created from late rows) are erased as a cluster too, so an
    identifier that arrived together with an erased one (a new device) is not kept either."""
    if con.execute(f"select count(*) from {SUPPRESSION} where suppression_action = 'erase'"
                   ).fetchone()[0] == 0:
        return []
    items = _late_identifiers(con, sources)
    if not items:
        return []
    with transaction(con):
        load_batch(con, items)
        results = steps.erase_and_suppress(con, sources, late_data=True).get(LATE_DATA, [])
        write_log(con, LATE_DATA, now(), results)
    return results


def forget_erased_phone_spellings(con: duckdb.DuckDBPyConnection) -> None:
    """The phone lookup keeps raw spellings: the ones no raw row holds any more (erased) leave."""
    from orchestration.phones import refresh_phone_numbers

    if relation_exists(con, phone_lookup()):
        refresh_phone_numbers(con)


def purge_late_rows_at_load(con: duckdb.DuckDBPyConnection,
                            project_file: Path | None = None) -> int:
    """At load: late rows of erased people, in any spelling, purged before anything reads them.

    Matching uses dbt's own normalisation: the staging views (already built over raw) give each
    new raw row's normalised identifiers (mailbox, E.164 phone from the phone lookup), and
    `purge_suppressed` compares them with the suppression list. Before the first dbt run there
    are no staging views and nothing was erased yet: nothing to do."""
    if not relation_exists(con, SUPPRESSION) or not relation_exists(con, staged_requests()):
        return 0
    late = purge_suppressed(con, identified_sources(project_file))
    if late:
        forget_erased_phone_spellings(con)
    return sum(t.rows_affected for t in late if t.target.startswith(raw_schema() + "."))


def drop_suppressed_rows(con: duckdb.DuckDBPyConnection, source_name: str,
                         source_file: str) -> int:
    """Delete the just-loaded rows of `source_file` that carry an erased identifier.

    Matches raw values lower-cased and trimmed (emails, ids) against the suppression hashes; the
    privacy asset's purge after dbt catches spellings only normalisation reveals (phones)."""
    if not relation_exists(con, SUPPRESSION) or source_name == REQUEST_SOURCE[1]:
        return 0
    candidates = raw_identifier_columns(source_name)
    if not candidates:
        return 0
    where = " or ".join(f"sha256(? || lower(trim(cast({quote(c)} as varchar)))) in {_ERASED}"
                        for c in candidates)
    table = catalog().source(SOURCES_BY_NAME[source_name].dbt_source, source_name)
    dropped = con.execute(f"delete from {table} where _source_file = ? and ({where})",
                          [source_file, *[salt()] * len(candidates)]).fetchone()[0]
    if dropped:  # logged so the next privacy run compacts the file (the rows reached its blocks)
        write_log(con, LATE_DATA, now(), [TargetResult(table, "delete", int(dropped))])
    return dropped
