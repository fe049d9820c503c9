"""Access requests: every row held about each person, as one private JSON file per request."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from orchestration.privacy.audit import now
from orchestration.privacy.matching import Listed, ValuesByRequest, match_records, match_rows
from orchestration.privacy.requests import Batch
from orchestration.privacy.sources import IdentifiedSource
from orchestration.privacy.sql import (
    Target, frame_records, placeholders, value_relation, warehouse_of,
)
from orchestration.settings import PROJECT_DIR
from orchestration.warehouse.base import Warehouse

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
        if rows:
            exports.setdefault(request_id, {})[table] = rows


def collect_exports(target: Target, batch: Batch, sources: Sequence[IdentifiedSource],
                    tables: Sequence[tuple[str, str, list[str]]]) -> dict[str, Export]:
    """Every row held about each access request's cluster of the batch, `{request_id: {table:
    rows}}`: raw rows by record id, every other base table (`tables`, from
    `access_tables`) by value; one scan per table."""
    wh = warehouse_of(target)
    values, customers = batch.values(["access"]), batch.customers_of(["access"])
    with value_relation(wh, sorted(set().union(*values.values()) if values else ())) as listed:
        return _collect(wh, values, customers, sources, tables, listed)


def _collect(wh: Warehouse, values: ValuesByRequest, customers: ValuesByRequest,
             sources: Sequence[IdentifiedSource], tables: Sequence[tuple[str, str, list[str]]],
             listed: Listed) -> dict[str, Export]:
    exports: dict[str, Export] = {}
    for source in sources:
        if not wh.exists(source.raw_table):
            continue
        found = match_records(wh, source, values, customers, listed)
        if not found:
            continue
        record_id = source.raw_record_id(wh)
        marks, params = placeholders(sorted(set().union(*found.values())), "r")
        rows = wh.query(f"select {record_id} as __privacy_record_id, * from {source.raw_table} "
                        f"where {record_id} in ({marks})", params)
        ids = list(rows["__privacy_record_id"])
        rows = frame_records(rows.drop(columns="__privacy_record_id"))
        _add(exports, source.raw_table, {
            r: [row for row, i in zip(rows, ids) if i in records]
            for r, records in sorted(found.items())})
    for schema, table, columns in tables:
        hits, matches = match_rows(wh, f"{schema}.{table}", columns, values, all_columns=True,
                                   listed=listed)
        if not len(hits):
            continue
        rows = frame_records(hits.drop(columns=[c for c in hits.columns
                                                if str(c).startswith("__privacy_")]))
        _add(exports, f"{schema}.{table}", {
            r: [rows[p] for p in positions] for r, positions in sorted(matches.items())})
    return {r: exports[r] for r in sorted(exports)}
