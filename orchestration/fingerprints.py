"""Content fingerprints of DuckDB relations, computed in SQL, so unchanged copies are not rebuilt.

A relation's fingerprint is its columns with their types, its row count and the sum of a hash of
every row (`hash()` of the row as a struct: order-independent, one scan, no copy). Two states of
a relation with the same fingerprint hold the same rows, up to a 64-bit hash collision between
two different contents with the same row count. The DuckDB version is part of it, since `hash()`
may change between versions (then everything is rebuilt once).

The BI publication (orchestration/publication.py) and the serving snapshot
(orchestration/serving/snapshot.py) store the fingerprints of what they were built from in their
own file, and skip what would come out the same. Both run these statements on DuckDB only: the
publication exists only on a DuckDB target, and the snapshot assembles on PostgreSQL and Spark
from local DuckDB copies of the relations it reads.
"""

from __future__ import annotations

import hashlib
import json

import duckdb

# A row alias no relation has as a column name (a column of that name would shadow the row).
ROW_ALIAS = "_cdp_fingerprinted_row"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def digest(parts: object) -> str:
    """SHA-256 of the JSON of `parts` (anything json.dumps takes, `str` for the rest)."""
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()


def relation_fingerprint(con: duckdb.DuckDBPyConnection, schema: str,
                         name: str) -> tuple[str, int]:
    """The fingerprint of relation `schema.name` of the current database, and its row count."""
    columns = con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_catalog = current_database() and table_schema = ? and table_name = ? "
        "order by ordinal_position",
        [schema, name],
    ).fetchall()
    rows, content = con.execute(
        f"select count(*), coalesce(sum(hash({ROW_ALIAS})), 0) "
        f"from {_quote(schema)}.{_quote(name)} as {ROW_ALIAS}"
    ).fetchone()
    return digest([duckdb.__version__, [list(c) for c in columns], rows, str(content)]), rows
