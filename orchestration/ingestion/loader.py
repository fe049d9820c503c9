"""Load landing files into the raw schema: validated, typed, idempotent, atomic per source.

One source loads in one transaction; each new or changed file is staged by its reader
(readers/csv.py, readers/parquet.py), typed (columns.py), and replaces what an earlier version of
the same file loaded. What a load does for people who asked to be erased is passed in
(`PrivacyAtLoad`, built by the Dagster asset from orchestration.privacy): the loader itself does
not import privacy, which reads the landing contract of this package.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from orchestration.ingestion.columns import REJECT_REASONS, Reject, match_columns
from orchestration.ingestion.contract import LandingLimits, LandingSource, landing_sources
from orchestration.ingestion.discovery import discover_landing, file_format, relative_path, stem
from orchestration.ingestion.errors import LandingError, LandingFileError
from orchestration.ingestion.readers.csv import stage_csv
from orchestration.ingestion.readers.parquet import parquet_header, stage_parquet
from orchestration.ingestion.reports import LandingLoadError, LoadReport, SourceReport
from orchestration.ingestion.schema import (
    ensure_raw_schema,
    load_log_table,
    load_rejects_table,
    raw_table,
)
from orchestration.ingestion.session import (
    BAD,
    ROWS,
    count_of,
    drop_session_tables,
    ident,
    prepare_session,
)
from orchestration.phones import refresh_phone_numbers

_HASH_CHUNK_BYTES = 1 << 23
# Characters DuckDB's readers take as a glob pattern in a path; no escape exists for them.
_GLOB_CHARACTERS = frozenset("*?[]{}")


@dataclass(frozen=True)
class PrivacyAtLoad:
    """What a load does for people who asked to be erased.

    `drop_suppressed_rows(con, source, file)`: inside the source's transaction, delete the rows
    just loaded from `file` that carry an erased identifier; returns how many.
    `purge_late_rows(con)`: after every source, purge late rows of erased people found by their
    normalised identifiers; returns how many.
    """

    drop_suppressed_rows: Callable[[duckdb.DuckDBPyConnection, str, str], int]
    purge_late_rows: Callable[[duckdb.DuckDBPyConnection], int]


def load_landing(
    landing_dir: Path,
    con: duckdb.DuckDBPyConnection,
    sources: Sequence[LandingSource] | None = None,
    *,
    limits: LandingLimits | None = None,
    privacy: PrivacyAtLoad | None = None,
    warnings: Sequence[str] = (),
) -> LoadReport:
    """Load new and changed landing files of every source; raise LandingLoadError if any failed.

    Each source loads in its own transaction: a failing source is rolled back and reported, the
    other sources are still loaded, and the error is raised at the end. `limits`: per-file
    limits, by default from the environment (LandingLimits.from_env). `privacy`: what the load
    does for erased people (the pipeline's asset passes orchestration.privacy's steps); None
    loads the files as they are, for a warehouse no erasure has run on. `sources`: by default
    the built-in and declared ones (`landing_sources()`; invalid declarations are warned about).
    `warnings`: found before the load (invalid declarations), first in the report.
    """
    declaration_warnings = list(warnings)
    if sources is None:
        sources = landing_sources(declaration_warnings)
    landing_dir = Path(landing_dir).resolve()
    limits = limits or LandingLimits.from_env()
    prepare_session(con)
    ensure_raw_schema(con, sources)
    inventory = discover_landing(landing_dir, sources)
    report = LoadReport(landing_dir=landing_dir,
                        warnings=declaration_warnings + list(inventory.warnings))
    loaded_at = dt.datetime.now(dt.timezone.utc)
    errors: list[LandingError] = []
    for source in sources:
        try:
            source_report = load_source(
                landing_dir, con, source, inventory.files[source.name], loaded_at=loaded_at,
                limits=limits, privacy=privacy,
            )
            report.sources[source.name] = source_report
            report.warnings += source_report.warnings
        except LandingError as error:
            report.sources[source.name] = SourceReport(source=source.name, error=str(error))
            errors.append(error)
    # Phone numbers parsed by libphonenumber for staging, then late rows of erased people
    # (matched by the staging views' normalised identifiers) purged before anything reads them.
    report.phones = refresh_phone_numbers(con)
    if privacy is not None:
        report.late_rows_purged = privacy.purge_late_rows(con)
    if errors:
        raise LandingLoadError(errors, report)
    return report


def load_source(
    landing_dir: Path,
    con: duckdb.DuckDBPyConnection,
    source: LandingSource,
    files: Sequence[Path] | None = None,
    *,
    loaded_at: dt.datetime | None = None,
    limits: LandingLimits | None = None,
    privacy: PrivacyAtLoad | None = None,
) -> SourceReport:
    """Load one source's new and changed files in one transaction; on any error nothing changes."""
    landing_dir = Path(landing_dir).resolve()
    limits = limits or LandingLimits.from_env()
    prepare_session(con)
    ensure_raw_schema(con, [source])
    if files is None:
        files = discover_landing(landing_dir, [source]).files[source.name]
    loaded_at = loaded_at or dt.datetime.now(dt.timezone.utc)
    report = SourceReport(source=source.name)
    loaded_hashes = dict(
        con.execute(
            f"select _source_file, arg_max(content_sha256, _loaded_at) from {load_log_table()} "
            "where source = ? group by _source_file",
            [source.name],
        ).fetchall()
    )
    files_of_digest: dict[str, str] = dict(
        con.execute(
            f"select content_sha256, min(_source_file) from {load_log_table()} "
            "where source = ? group by content_sha256",
            [source.name],
        ).fetchall()
    )
    pending: list[tuple[Path, str, str, bool, tuple[int, int]]] = []
    for path in files:
        relative = relative_path(landing_dir, path)
        _refuse_escaping_link(landing_dir, path, relative, source)
        try:
            stamp = _stamp(path)
            if _is_empty(path):
                report.files_empty.append(relative)
                report.warnings.append(
                    f"{relative}: empty file (0 bytes), skipped; nothing was loaded from it "
                    "and rows of an earlier version of it, if any, are kept"
                )
                continue
            digest = _sha256(path)
        except FileNotFoundError as error:
            raise _disappeared(relative, source) from error
        if loaded_hashes.get(relative) == digest:
            report.files_skipped.append(relative)
            continue
        twin = files_of_digest.get(digest)
        if twin is not None and twin != relative:
            report.warnings.append(
                f"{relative}: same content as {twin}, which is already loaded; loaded again, "
                f"staging deduplicates on {source.record_id}"
            )
        files_of_digest.setdefault(digest, relative)
        pending.append((path, relative, digest, relative in loaded_hashes, stamp))
    if not pending:
        return report

    con.execute("begin transaction")
    try:
        for path, relative, digest, seen_before, stamp in pending:
            try:
                _load_file(con, source, path, relative, digest, seen_before, loaded_at, report,
                           limits, privacy)
            except (duckdb.Error, OSError, UnicodeError) as error:
                if not path.exists():
                    raise _disappeared(relative, source) from error
                raise LandingFileError(relative, f"could not be loaded: {error}") from error
            _check_unchanged(path, relative, source, stamp)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    finally:
        drop_session_tables(con)
    return report


def _refuse_escaping_link(
    landing_dir: Path, path: Path, relative: str, source: LandingSource
) -> None:
    """Fail the source if `path` is, or lies in, a symbolic link leading out of the landing folder.

    The message names the link, never the target's content (nothing of it has been read)."""
    try:
        path.resolve(strict=True).relative_to(landing_dir)
    except FileNotFoundError as error:
        raise _disappeared(relative, source) from error
    except (ValueError, RuntimeError) as error:  # RuntimeError: a symlink loop
        raise LandingFileError(
            relative,
            "is a symbolic link (or lies in a linked folder) that leads outside the landing "
            f"folder; refused without reading it, and nothing of source {source.name} was "
            "changed. Copy the file into the landing folder instead",
        ) from error


@contextmanager
def _literal_path(path: Path) -> Iterator[str]:
    """A path DuckDB reads as exactly this file, never as a glob pattern.

    DuckDB expands `*`, `?` and `[...]` in the path of read_csv/read_parquet and has no escape; a
    file named like that is reached through a symlink with a plain name in a private temp folder.
    """
    absolute = path.resolve()
    if not _GLOB_CHARACTERS & set(str(absolute)):
        yield str(absolute)
        return
    folder = Path(tempfile.mkdtemp(prefix="cdp-landing-"))
    try:
        alias = folder / ("file" + path.name[len(stem(path)):].lower())  # .csv, .csv.gz, ...
        if _GLOB_CHARACTERS & set(str(alias)):
            raise LandingError(f"temporary folder {folder} has glob characters in its path; "
                               "set TMPDIR to a plain path")
        os.symlink(absolute, alias)
        yield str(alias)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _stamp(path: Path) -> tuple[int, int]:
    """Size and modification time: what tells that a file changed while it was being loaded."""
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _is_empty(path: Path) -> bool:
    """A file of 0 bytes, or a .gz file that decompresses to nothing."""
    if path.stat().st_size == 0:
        return True
    if not path.name.lower().endswith(".gz"):
        return False
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read(1) == b""
    except (OSError, EOFError):  # not valid gzip: the load reports it
        return False


def _disappeared(relative: str, source: LandingSource) -> LandingFileError:
    return LandingFileError(
        relative,
        "disappeared during the load: it was in the landing folder when the load started and "
        f"no longer exists; nothing of source {source.name} was changed, the next run retries",
    )


def _check_unchanged(
    path: Path, relative: str, source: LandingSource, stamp: tuple[int, int]
) -> None:
    """Fail the source if the file vanished or was rewritten while it was being read."""
    try:
        now = _stamp(path)
    except FileNotFoundError as error:
        raise _disappeared(relative, source) from error
    if now != stamp:
        raise LandingFileError(
            relative,
            "changed while it was being loaded (size or modification time differ); nothing of "
            f"source {source.name} was changed, the next run loads the new version",
        )


def _load_file(
    con: duckdb.DuckDBPyConnection,
    source: LandingSource,
    path: Path,
    relative: str,
    digest: str,
    seen_before: bool,
    loaded_at: dt.datetime,
    report: SourceReport,
    limits: LandingLimits,
    privacy: PrivacyAtLoad | None,
) -> None:
    """Stage one file, then replace whatever an earlier version of it loaded."""
    drop_session_tables(con)
    with _literal_path(path) as reader_path:
        if file_format(path) == "csv":
            columns, structural_rejects, warning = stage_csv(
                con, source, path, reader_path, relative, limits)
            if warning:
                report.warnings.append(warning)
        else:
            header = parquet_header(con, reader_path)
            columns = match_columns(source, relative, header, limits.max_columns)
            stage_parquet(con, reader_path, columns, limits.max_field_bytes)
            structural_rejects = []
    con.execute(f"create temp table {BAD} as select * from {ROWS} where _bad")

    replaced = 0
    if seen_before:  # the file changed since it was loaded: its earlier rows and rejects go
        replaced = count_of(
            con, f"delete from {raw_table(source)} where _source_file = ?", [relative]
        )
        con.execute(f"delete from {load_rejects_table()} where _source_file = ?", [relative])
    for column in columns:
        if not column.known:
            con.execute(f"alter table {raw_table(source)} add column if not exists "
                        f"{ident(column.name)} varchar")
    selected = ", ".join(f"_c{i} as {ident(c.name)}" for i, c in enumerate(columns))
    loaded = count_of(
        con,
        f"insert into {raw_table(source)} by name "
        f"select {selected}, ? as _source_file, _line as _source_line, ? as _loaded_at "
        f"from {ROWS} where not _bad",
        [relative, loaded_at],
    )
    # Rows of people who asked to be erased never stay in raw, even when a source re-sends them.
    if privacy is not None:
        loaded -= privacy.drop_suppressed_rows(con, source.name, relative)
    for i, column in enumerate(columns):  # text columns: too long or NUL; typed: no parse
        reason = "_r" + str(i) if column.type == "text" else "?"
        con.execute(
            f"insert into {load_rejects_table()} "
            f"select ?, ?, _line, ?, _e{i}, {reason}, ? from {BAD} where _e{i} is not null",
            [source.name, relative, column.name]
            + ([] if column.type == "text" else [REJECT_REASONS[column.type]]) + [loaded_at],
        )
    if structural_rejects:
        _insert_structural_rejects(con, source, relative, structural_rejects, loaded_at)
    rejected = con.execute(f"select count(*) from {BAD}").fetchone()[0] + len(structural_rejects)
    con.execute(
        f"insert into {load_log_table()} values (?, ?, ?, ?, ?, ?, ?)",
        [relative, source.name, digest, loaded, rejected, replaced, loaded_at],
    )
    report.files_loaded.append(relative)
    report.rows_loaded += loaded
    report.rows_rejected += rejected
    report.rows_replaced += replaced


def _insert_structural_rejects(
    con: duckdb.DuckDBPyConnection,
    source: LandingSource,
    relative: str,
    rejects: Sequence[Reject],
    loaded_at: dt.datetime,
) -> None:
    con.execute(
        f"""
        insert into {load_rejects_table()}
        select ?, ?, unnest(?::bigint[]), unnest(?::varchar[]), unnest(?::varchar[]),
               unnest(?::varchar[]), ?
        """,
        [source.name, relative, [r.line for r in rejects], [r.column_name for r in rejects],
         [r.raw_value for r in rejects], [r.reason for r in rejects], loaded_at],
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
