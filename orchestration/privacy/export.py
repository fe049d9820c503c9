"""Access requests: every row held about each person, as one private JSON file per request."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import duckdb

from orchestration.privacy.audit import now, quote, relation_exists
from orchestration.privacy.matching import access_tables, match_records, match_rows, rows_by_request
from orchestration.privacy.requests import restrict
from orchestration.privacy.sources import IdentifiedSource
from orchestration.settings import PROJECT_DIR

Export = dict[str, list[dict[str, Any]]]  # table -> rows

# A request id is data from a landing file: it names the export file only when it is a plain
# name (letters, digits, "-", "_", "." inside); anything else gets a name derived from its hash.
_SAFE_EXPORT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def export_dir() -> Path:
    path = Path(os.environ.get("CDP_PRIVACY_EXPORT_DIR", "data/privacy/exports")).expanduser()
    return path if path.is_absolute() else (PROJECT_DIR / path).resolve()


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


def write_export(request_id: str, customer_ids: Iterable[str], tables: Export) -> Path:
    """The request's JSON file, created 0600 in the 0700 export folder."""
    folder = _private_dir(export_dir())
    path = folder / export_file_name(request_id)
    body = json.dumps(
        {"request_id": request_id, "generated_at": now().isoformat(),
         "customer_ids": sorted(customer_ids), "tables": tables}, default=str, indent=1)
    # Created 0600 from the start; O_NOFOLLOW: a symlink planted under that name is not followed.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(body)
    return path


def _add(exports: dict[str, Export], table: str, found: dict[str, list[dict[str, Any]]]) -> None:
    for request_id, rows in found.items():
        exports.setdefault(request_id, {})[table] = rows


def collect_exports(con: duckdb.DuckDBPyConnection,
                    sources: Sequence[IdentifiedSource]) -> dict[str, Export]:
    """Every row held about each access request's cluster of the batch, `{request_id: {table:
    rows}}`: raw rows by record id, every other table and view by value; one scan per table."""
    values, customers = restrict(con, ["access"])
    exports: dict[str, Export] = {}
    for source in sources:
        if not relation_exists(con, source.raw_table) or not match_records(
                con, source, values, customers):
            continue
        _add(exports, source.raw_table, rows_by_request(
            con, "select r.request_id as __privacy_request_id, "
            "t.* exclude (__privacy_record_id) from (select cast("
            f"{source.raw_record_id_sql} as varchar) as __privacy_record_id, * "
            f"from {source.raw_table}) as t inner join _privacy_records as r "
            "on t.__privacy_record_id = r.record_id order by r.request_id"))
    for schema, table, columns in access_tables(con):
        if not match_rows(con, f"{quote(schema)}.{quote(table)}", columns, values,
                          "row_number() over ()", all_columns=True):
            continue
        _add(exports, f"{schema}.{table}", rows_by_request(
            con, "select m.request_id as __privacy_request_id, h.* exclude (__privacy_row) "
            "from _privacy_hits as h inner join _privacy_matches as m using (__privacy_row) "
            "order by m.request_id, h.__privacy_row"))
    return exports
