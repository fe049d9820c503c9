"""Warehouse compaction after an erasure: live data copied into a fresh file that replaces the old.

DuckDB keeps deleted values in the free blocks of its file (found by `strings` after FORCE
CHECKPOINT and VACUUM), so an erasure that only deletes rows leaves the person's bytes on disk.
`compact_warehouse` copies every live object into a new file (`ATTACH` + `COPY FROM DATABASE`),
checks that every table has the same row count, swaps it in with an atomic rename and overwrites
the old file's bytes with zeros before removing it. It runs inside the privacy asset, which holds
the warehouse pool slot, so no other asset has the file open (DuckDB allows one writer per file);
a connection still open in this process or another process makes it refuse, without changing
anything. docs/security.md ("Erasure leaves no recoverable bytes") has the measured cost.
"""

from __future__ import annotations

import os
import stat
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb

from orchestration.warehouse.duckdb_limits import apply_limits

COMPACTED = "cdp_compacted"
_ZEROS = b"\0" * (1 << 20)


class CompactionError(Exception):
    """The warehouse could not be compacted; it was left exactly as it was."""


@dataclass(frozen=True)
class CompactionReport:
    """What one compaction did: file sizes before and after, tables copied, time taken."""

    path: Path
    bytes_before: int
    bytes_after: int
    tables: int
    seconds: float

    def as_metadata(self) -> dict[str, object]:
        return {"compaction_bytes_before": self.bytes_before,
                "compaction_bytes_after": self.bytes_after,
                "compaction_tables": self.tables,
                "compaction_seconds": round(self.seconds, 2)}


def skip_reason(target: str) -> str | None:
    """Why compaction does not apply on dbt target `target` (None on DuckDB): it rewrites the
    DuckDB warehouse file; PostgreSQL reclaims deleted rows with VACUUM (autovacuum; VACUUM FULL
    rewrites the table files) and Spark's parquet tables are rewritten whole by every delete, so
    there is no file of this project's to compact there (docs/operations.md)."""
    if target == "duckdb":
        return None
    return (f"target {target}: no DuckDB warehouse file to compact; deleted rows are reclaimed "
            "by the engine (PostgreSQL: VACUUM; Spark: tables rewritten on delete)")


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def _fresh_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.compacting")


def _retired_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.retired")


def _exclusive_connection(path: Path) -> duckdb.DuckDBPyConnection:
    """A connection that is the only one to `path`: DuckDB reuses an open database of this
    process for a plain connect, but refuses a second one with a different configuration, and
    another process's lock makes the open fail."""
    try:
        con = duckdb.connect(str(path), config={
            "custom_user_agent": f"cdp-compaction-{uuid.uuid4().hex}"})
    except (duckdb.ConnectionException, duckdb.IOException) as error:
        raise CompactionError(
            f"{path} is open elsewhere (in this process or another one), so it cannot be swapped "
            f"safely; compaction skipped, the next privacy run retries ({error})") from error
    apply_limits(con)  # CDP_DUCKDB_* as on every other connection of the CDP
    return con


def _row_counts(con: duckdb.DuckDBPyConnection, catalog: str) -> dict[str, int]:
    tables = con.execute(
        "select schema_name, table_name from duckdb_tables() where database_name = ? "
        "and not temporary order by all", [catalog]).fetchall()
    return {f"{schema}.{table}": con.execute(
        f"select count(*) from {_ident(catalog)}.{_ident(schema)}.{_ident(table)}").fetchone()[0]
        for schema, table in tables}


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def shred(path: Path) -> None:
    """Overwrite a file's bytes with zeros, flush them to disk, then remove it.

    On copy-on-write or flash storage the old blocks may survive below the file system; that
    layer needs disk encryption (docs/security.md)."""
    if not path.exists():
        return
    size = path.stat().st_size
    with path.open("r+b", buffering=0) as handle:
        written = 0
        while written < size:
            written += handle.write(_ZEROS[: min(len(_ZEROS), size - written)])
        os.fsync(handle.fileno())
    path.unlink()


def _copy_live_data(con: duckdb.DuckDBPyConnection, fresh: Path) -> int:
    """Copy every object of the open database into `fresh`; the number of tables copied."""
    catalog = con.execute("select current_database()").fetchone()[0]
    before = _row_counts(con, catalog)
    con.execute(f"attach {_literal(str(fresh))} as {COMPACTED}")
    try:
        con.execute(f"copy from database {_ident(catalog)} to {COMPACTED}")
        after = _row_counts(con, COMPACTED)
    finally:
        con.execute(f"detach {COMPACTED}")
    if after != before:
        differ = sorted(t for t in before.keys() | after.keys() if before.get(t) != after.get(t))
        raise CompactionError(f"the copy differs from the warehouse in {', '.join(differ)}; "
                              "compaction abandoned, the warehouse is unchanged")
    return len(before)


def _clear_retired(path: Path, retired: Path) -> None:
    """What an interrupted swap left: a second name of the live file (killed before the rename:
    only the name goes) or the replaced file (killed before it was zeroed: zeroed now)."""
    if not retired.exists():
        return
    if path.exists() and os.path.samefile(path, retired):
        retired.unlink()
    else:
        shred(retired)


def compact_warehouse(path: Path) -> CompactionReport:
    """Rewrite the DuckDB file at `path` with its live data only; raise CompactionError (leaving
    the file as it was) if it is open elsewhere or the copy does not match."""
    started = time.perf_counter()
    path = Path(path).absolute()
    fresh, retired = _fresh_path(path), _retired_path(path)
    for leftover in (fresh, _wal(fresh)):  # an interrupted compaction: live data only
        leftover.unlink(missing_ok=True)
    _clear_retired(path, retired)
    before = path.stat().st_size
    con = _exclusive_connection(path)
    try:
        tables = _copy_live_data(con, fresh)
    except BaseException:
        con.close()
        fresh.unlink(missing_ok=True)
        _wal(fresh).unlink(missing_ok=True)
        raise
    con.close()
    if _wal(path).exists() or _wal(fresh).exists():
        fresh.unlink(missing_ok=True)
        raise CompactionError(f"{_wal(path)} still exists after closing the warehouse; "
                              "compaction abandoned, the warehouse is unchanged")
    os.chmod(fresh, stat.S_IMODE(path.stat().st_mode))
    _fsync(fresh)
    try:
        os.link(path, retired)  # the old bytes stay reachable by name until they are zeroed
        linked = True
    except OSError:  # no hard links on this file system: the old file is only unlinked
        linked = False
    os.replace(fresh, path)
    _fsync(path.parent)
    if linked:
        shred(retired)
    return CompactionReport(path=path, bytes_before=before, bytes_after=path.stat().st_size,
                            tables=tables, seconds=time.perf_counter() - started)
