"""Load landing files into the raw schema: validated, typed, idempotent, atomic per source."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import duckdb
import numpy as np

from orchestration.landing_contract import (
    MAX_COLUMNS_ENV,
    MAX_FIELD_BYTES_ENV,
    SOURCES,
    ColumnType,
    LandingLimits,
    LandingSource,
)

if TYPE_CHECKING:
    from orchestration.phones import PhoneReport

RAW_SCHEMA = "raw"
LOAD_LOG = f"{RAW_SCHEMA}._load_log"
LOAD_REJECTS = f"{RAW_SCHEMA}._load_rejects"
METADATA_COLUMNS: dict[str, str] = {
    "_source_file": "VARCHAR",
    "_source_line": "BIGINT",
    "_loaded_at": "TIMESTAMPTZ",
}
SQL_TYPES: dict[ColumnType, str] = {
    "text": "VARCHAR",
    "timestamp": "TIMESTAMPTZ",
    "number": "DOUBLE",
    "integer": "BIGINT",
}
REJECT_REASONS: dict[ColumnType, str] = {
    "timestamp": "not a timestamp (expected ISO 8601, e.g. 2025-03-04T10:11:12Z)",
    "number": "not a finite number (expected e.g. 1234.50)",
    "integer": "not an integer",
}
CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet",)
# Whitespace trimmed from every value before it is typed (space, tab, CR, LF); empty is NULL.
_TRIM_SQL = "' ' || chr(9) || chr(13) || chr(10)"
MAX_RAW_VALUE_CHARS = 1000
_SAVE_AS_UTF8 = "UTF-8: re-export or convert the file (e.g. iconv -t UTF-8)"
NOT_UTF8_REASON = ("not valid UTF-8 (bytes of another encoding, e.g. Latin-1 or Windows-1252; "
                   "save the file as UTF-8)")
_CHUNK_BYTES = 1 << 23
# The header line is read on its own before anything else, so a file too wide fails at once.
MAX_HEADER_BYTES = 1 << 20
# Characters DuckDB's readers take as a glob pattern in a path; no escape exists for them.
_GLOB_CHARACTERS = frozenset("*?[]{}")

# Session objects used while one file is staged; dropped again before the next file.
_STAGE = "_landing_stage"
_ROWS = "_landing_rows"  # view over _STAGE with _line, the row's line in its file
_SKIPS = "_landing_skips"
_EXTRA = "_landing_extra_lines"
_LINES = "_landing_line_numbers"
_BAD = "_landing_bad_rows"
_CSV_REJECT_ERRORS = "_landing_csv_reject_errors"
_CSV_REJECT_SCANS = "_landing_csv_reject_scans"


class LandingError(Exception):
    """Something in the landing folder cannot be loaded."""


class LandingFileError(LandingError):
    """One landing file breaks the contract (missing required column, unreadable header, ...)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class LandingLoadError(LandingError):
    """One or more sources failed to load; each was rolled back, the others were committed."""

    def __init__(self, errors: Sequence[LandingError], report: LoadReport) -> None:
        lines = "\n".join(f"  - {error}" for error in errors)
        super().__init__(
            f"{len(errors)} landing source(s) failed to load and were left as they were:\n{lines}"
        )
        self.errors = list(errors)
        self.report = report


@dataclass
class SourceReport:
    """What one load did to one source."""

    source: str
    files_loaded: list[str] = field(default_factory=list)
    files_skipped: list[str] = field(default_factory=list)
    files_empty: list[str] = field(default_factory=list)
    rows_loaded: int = 0
    rows_rejected: int = 0
    rows_replaced: int = 0
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    def summary(self) -> str:
        if self.error is not None:
            return f"{self.source}: FAILED, nothing changed ({self.error})"
        parts = [
            f"{len(self.files_loaded)} file(s) loaded",
            f"{self.rows_loaded:,} rows",
            f"{self.rows_rejected:,} rejected",
        ]
        if self.rows_replaced:
            parts.append(f"{self.rows_replaced:,} rows of changed files replaced")
        if self.files_skipped:
            parts.append(f"{len(self.files_skipped)} unchanged file(s) skipped")
        if self.files_empty:
            parts.append(f"{len(self.files_empty)} empty file(s) skipped")
        return f"{self.source}: " + ", ".join(parts)


@dataclass
class LoadReport:
    """What one load of the landing folder did, per source."""

    landing_dir: Path
    sources: dict[str, SourceReport] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    phones: PhoneReport | None = None  # numbers parsed for staging, invalid ones counted
    late_rows_purged: int = 0  # rows of erased people found by their normalised identifiers

    @property
    def rows_loaded(self) -> int:
        return sum(s.rows_loaded for s in self.sources.values())

    @property
    def rows_rejected(self) -> int:
        return sum(s.rows_rejected for s in self.sources.values())

    @property
    def files_loaded(self) -> int:
        return sum(len(s.files_loaded) for s in self.sources.values())

    @property
    def files_skipped(self) -> int:
        return sum(len(s.files_skipped) for s in self.sources.values())

    def summary(self) -> str:
        lines = [
            f"Landing folder {self.landing_dir}: {self.files_loaded} file(s) loaded, "
            f"{self.files_skipped} unchanged skipped, {self.rows_loaded:,} rows loaded, "
            f"{self.rows_rejected:,} rejected"
            + (f" (see {LOAD_REJECTS})" if self.rows_rejected else "")
        ]
        lines += [
            f"  {report.summary()}"
            for report in self.sources.values()
            if report.files_loaded or report.files_skipped or report.files_empty or report.error
        ]
        if self.phones is not None:
            lines.append(f"  {self.phones.summary()}")
        if self.late_rows_purged:
            lines.append(f"  {self.late_rows_purged:,} late row(s) of erased people purged")
        lines += [f"  warning: {warning}" for warning in self.warnings]
        return "\n".join(lines)


@dataclass(frozen=True)
class LandingInventory:
    """Landing files per source, and what was found but will not be loaded."""

    files: dict[str, list[Path]]
    warnings: list[str]


@dataclass(frozen=True)
class _Column:
    """One column of a landing file: its name in the file, its contract name and type."""

    file_name: str
    name: str
    type: ColumnType
    known: bool


@dataclass(frozen=True)
class _Reject:
    line: int | None
    column_name: str | None
    raw_value: str | None
    reason: str


# --------------------------------------------------------------------------------------------
# Schema


def ensure_raw_schema(
    con: duckdb.DuckDBPyConnection, sources: Sequence[LandingSource] = SOURCES
) -> None:
    """Create schema raw, an empty table per source with every known column, the log and rejects."""
    con.execute(f"create schema if not exists {RAW_SCHEMA}")
    for source in sources:
        columns = [(c, SQL_TYPES[source.column_type(c)]) for c in source.known_columns]
        columns += list(METADATA_COLUMNS.items())
        ddl = ",\n    ".join(f"{_ident(name)} {sql_type}" for name, sql_type in columns)
        con.execute(f"create table if not exists {_raw_table(source)} (\n    {ddl}\n)")
        for name, sql_type in columns:  # a contract that gained a column since the table was made
            con.execute(f"alter table {_raw_table(source)} "
                        f"add column if not exists {_ident(name)} {sql_type}")
    con.execute(
        f"""
        create table if not exists {LOAD_LOG} (
            _source_file varchar,
            source varchar,
            content_sha256 varchar,
            rows_loaded bigint,
            rows_rejected bigint,
            rows_replaced bigint,
            _loaded_at timestamptz
        )
        """
    )
    con.execute(
        f"""
        create table if not exists {LOAD_REJECTS} (
            source varchar,
            _source_file varchar,
            _source_line bigint,
            column_name varchar,
            raw_value varchar,
            reason varchar,
            _loaded_at timestamptz
        )
        """
    )


# --------------------------------------------------------------------------------------------
# Discovery


def _ignored(name: str) -> bool:
    return name.startswith(("_", "."))


def _format(path: Path) -> str | None:
    lower = path.name.lower()
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def _stem(path: Path) -> str:
    lower = path.name.lower()
    for suffix in CSV_SUFFIXES[::-1] + PARQUET_SUFFIXES:  # longest first: .csv.gz before .csv
        if lower.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.name


def discover_landing(
    landing_dir: Path, sources: Sequence[LandingSource] = SOURCES
) -> LandingInventory:
    """Find each source's files: `<name>.csv|.csv.gz|.parquet` or any such file under `<name>/`."""
    if not landing_dir.is_dir():
        raise LandingError(f"landing folder {landing_dir} does not exist or is not a folder")
    names = {source.name for source in sources}
    files: dict[str, list[Path]] = {source.name: [] for source in sources}
    warnings: list[str] = []
    for entry in sorted(landing_dir.iterdir()):
        if _ignored(entry.name):
            continue
        relative = _relative(landing_dir, entry)
        if entry.is_dir():
            if entry.name not in names:
                warnings.append(f"{relative}/: no source of that name in the contract, ignored")
                continue
            for path in sorted(entry.rglob("*")):
                parts = path.relative_to(entry).parts
                if any(_ignored(part) for part in parts) or not path.is_file():
                    continue
                if _format(path) is None:
                    warnings.append(f"{_relative(landing_dir, path)}: not .csv, .csv.gz or "
                                    ".parquet, ignored")
                    continue
                files[entry.name].append(path)
        elif entry.is_file():
            if _format(entry) is None or _stem(entry) not in names:
                warnings.append(f"{relative}: not a landing file of the contract "
                                "(<source>.csv, .csv.gz or .parquet), ignored")
                continue
            files[_stem(entry)].append(entry)
    return LandingInventory(files=files, warnings=warnings)


# --------------------------------------------------------------------------------------------
# Loading


def load_landing(
    landing_dir: Path,
    con: duckdb.DuckDBPyConnection,
    sources: Sequence[LandingSource] = SOURCES,
    *,
    limits: LandingLimits | None = None,
) -> LoadReport:
    """Load new and changed landing files of every source; raise LandingLoadError if any failed.

    Each source loads in its own transaction: a failing source is rolled back and reported, the
    other sources are still loaded, and the error is raised at the end. `limits`: per-file
    limits, by default from the environment (LandingLimits.from_env).
    """
    landing_dir = Path(landing_dir).resolve()
    limits = limits or LandingLimits.from_env()
    _prepare_session(con)
    ensure_raw_schema(con, sources)
    inventory = discover_landing(landing_dir, sources)
    report = LoadReport(landing_dir=landing_dir, warnings=list(inventory.warnings))
    loaded_at = dt.datetime.now(dt.timezone.utc)
    errors: list[LandingError] = []
    for source in sources:
        try:
            source_report = load_source(
                landing_dir, con, source, inventory.files[source.name], loaded_at=loaded_at,
                limits=limits,
            )
            report.sources[source.name] = source_report
            report.warnings += source_report.warnings
        except LandingError as error:
            report.sources[source.name] = SourceReport(source=source.name, error=str(error))
            errors.append(error)
    # Phone numbers parsed by libphonenumber for staging, then late rows of erased people
    # (matched by the staging views' normalised identifiers) purged before anything reads them.
    from orchestration.phones import refresh_phone_numbers
    from orchestration.privacy import purge_late_rows_at_load

    report.phones = refresh_phone_numbers(con)
    report.late_rows_purged = purge_late_rows_at_load(con)
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
) -> SourceReport:
    """Load one source's new and changed files in one transaction; on any error nothing changes."""
    landing_dir = Path(landing_dir).resolve()
    limits = limits or LandingLimits.from_env()
    _prepare_session(con)
    ensure_raw_schema(con, [source])
    if files is None:
        files = discover_landing(landing_dir, [source]).files[source.name]
    loaded_at = loaded_at or dt.datetime.now(dt.timezone.utc)
    report = SourceReport(source=source.name)
    loaded_hashes = dict(
        con.execute(
            f"select _source_file, arg_max(content_sha256, _loaded_at) from {LOAD_LOG} "
            "where source = ? group by _source_file",
            [source.name],
        ).fetchall()
    )
    files_of_digest: dict[str, str] = dict(
        con.execute(
            f"select content_sha256, min(_source_file) from {LOAD_LOG} "
            "where source = ? group by content_sha256",
            [source.name],
        ).fetchall()
    )
    pending: list[tuple[Path, str, str, bool, tuple[int, int]]] = []
    for path in files:
        relative = _relative(landing_dir, path)
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
                           limits)
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
        _drop_session_tables(con)
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
        alias = folder / ("file" + path.name[len(_stem(path)):].lower())  # .csv, .csv.gz, ...
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
) -> None:
    """Stage one file, then replace whatever an earlier version of it loaded."""
    _drop_session_tables(con)
    with _literal_path(path) as reader_path:
        if _format(path) == "csv":
            columns, structural_rejects, warning = _stage_csv(
                con, source, path, reader_path, relative, limits)
            if warning:
                report.warnings.append(warning)
        else:
            header = _parquet_header(con, reader_path)
            columns = _columns(source, relative, header, limits.max_columns)
            _stage_parquet(con, reader_path, columns, limits.max_field_bytes)
            structural_rejects = []
    con.execute(f"create temp table {_BAD} as select * from {_ROWS} where _bad")

    replaced = 0
    if seen_before:  # the file changed since it was loaded: its earlier rows and rejects go
        replaced = _count(
            con, f"delete from {_raw_table(source)} where _source_file = ?", [relative]
        )
        con.execute(f"delete from {LOAD_REJECTS} where _source_file = ?", [relative])
    for column in columns:
        if not column.known:
            con.execute(f"alter table {_raw_table(source)} add column if not exists "
                        f"{_ident(column.name)} varchar")
    selected = ", ".join(f"_c{i} as {_ident(c.name)}" for i, c in enumerate(columns))
    loaded = _count(
        con,
        f"insert into {_raw_table(source)} by name "
        f"select {selected}, ? as _source_file, _line as _source_line, ? as _loaded_at "
        f"from {_ROWS} where not _bad",
        [relative, loaded_at],
    )
    # Rows of people who asked to be erased never stay in raw, even when a source re-sends them.
    from orchestration.privacy import drop_suppressed_rows

    loaded -= drop_suppressed_rows(con, source.name, relative)
    for i, column in enumerate(columns):  # text columns: too long or NUL; typed: no parse
        reason = "_r" + str(i) if column.type == "text" else "?"
        con.execute(
            f"insert into {LOAD_REJECTS} "
            f"select ?, ?, _line, ?, _e{i}, {reason}, ? from {_BAD} where _e{i} is not null",
            [source.name, relative, column.name]
            + ([] if column.type == "text" else [REJECT_REASONS[column.type]]) + [loaded_at],
        )
    if structural_rejects:
        _insert_structural_rejects(con, source, relative, structural_rejects, loaded_at)
    rejected = con.execute(f"select count(*) from {_BAD}").fetchone()[0] + len(structural_rejects)
    con.execute(
        f"insert into {LOAD_LOG} values (?, ?, ?, ?, ?, ?, ?)",
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
    rejects: Sequence[_Reject],
    loaded_at: dt.datetime,
) -> None:
    con.execute(
        f"""
        insert into {LOAD_REJECTS}
        select ?, ?, unnest(?::bigint[]), unnest(?::varchar[]), unnest(?::varchar[]),
               unnest(?::varchar[]), ?
        """,
        [source.name, relative, [r.line for r in rejects], [r.column_name for r in rejects],
         [r.raw_value for r in rejects], [r.reason for r in rejects], loaded_at],
    )


# --------------------------------------------------------------------------------------------
# Columns and typing


def _columns(
    source: LandingSource, relative: str, header: Sequence[str], max_columns: int
) -> list[_Column]:
    """Match a file's header to the contract; raise LandingFileError naming what is wrong."""
    if len(header) > max_columns:
        raise LandingFileError(
            relative, f"has {len(header):,} columns, more than the limit of {max_columns:,} "
            f"columns per file ({MAX_COLUMNS_ENV}); refused before reading its rows, nothing of "
            f"source {source.name} was changed",
        )
    known = set(source.known_columns)
    columns: list[_Column] = []
    seen: dict[str, int] = {}
    for position, file_name in enumerate(header, start=1):
        name = file_name.strip().lower()
        if name == "":
            raise LandingFileError(relative, f"column {position} of the header has no name")
        if name in seen:
            raise LandingFileError(
                relative, f"column {name!r} appears twice in the header (columns {seen[name]} "
                f"and {position})"
            )
        if name in METADATA_COLUMNS:
            raise LandingFileError(relative, f"column {name!r} is reserved for the loader")
        seen[name] = position
        in_contract = name in known
        column_type = source.column_type(name) if in_contract else "text"
        columns.append(_Column(file_name, name, column_type, in_contract))
    missing = [c for c in source.required if c not in seen]
    if missing:
        raise LandingFileError(
            relative,
            f"missing required column(s) {', '.join(missing)} for source {source.name} "
            f"(the file has: {', '.join(seen) or 'no columns'})",
        )
    # Known columns absent from the file are simply NULL in raw; the table already has them.
    return columns


def _staging_select(
    columns: Sequence[_Column],
    source_exprs: Sequence[str],
    relation: str,
    carried: Sequence[str],
    max_field_bytes: int,
) -> str:
    """One pass over a file: per column _c<i> (typed value) and _e<i> (the text when it is
    rejected, else NULL), for text columns _r<i> (why: longer than `max_field_bytes`, or a NUL
    byte); _bad when any value is rejected; `carried` passed along.

    Layered so that each value is trimmed once and cast once. Trimming removes spaces, tabs, CR
    and LF at both ends; what is left empty is NULL.
    """
    carried_names = [expr.rsplit(" as ", 1)[-1] for expr in carried]
    spaces_trimmed = [f"trim(cast({expr} as varchar)) as _t{i}"
                      for i, expr in enumerate(source_exprs)]
    # Trimming a set of characters is slow; only values that still start or end with a tab,
    # CR or LF after trimming spaces (rare) take that path.
    trimmed = [
        f"nullif(case when ascii(_t{i}) in (9, 10, 13) or ends_with(_t{i}, chr(9)) "
        f"or ends_with(_t{i}, chr(10)) or ends_with(_t{i}, chr(13)) "
        f"then trim(_t{i}, {_TRIM_SQL}) else _t{i} end, '') as _v{i}"
        for i in range(len(source_exprs))
    ]
    cast, checked, final, oks = [], [], [], []
    for i, column in enumerate(columns):
        v, p = f"_v{i}", f"_p{i}"
        if column.type == "text":
            cast.append(f"{v} as _c{i}")
            checked += [f"_c{i}", _text_problem(f"_c{i}", max_field_bytes) + f" as _r{i}"]
            final += [f"_c{i}", f"_r{i}",
                      f"case when _r{i} is not null then "
                      f"replace(left(_c{i}, {MAX_RAW_VALUE_CHARS}), chr(0), '\\0') end as _e{i}"]
            oks.append(f"_r{i} is null")
            continue
        cast.append(v)
        if column.type == "timestamp":
            cast.append(f"try_cast({v} as timestamptz) as {p}")
            # ISO 8601: starts with a 4-digit year, which also keeps 'epoch' and 'infinity' out.
            valid = (f"isfinite({p}) and substr({v}, 5, 1) = '-' "
                     f"and substr({v}, 1, 1) between '0' and '9'")
        elif column.type == "number":
            cast.append(f"try_cast({v} as double) as {p}")
            valid = f"isfinite({p})"
        elif column.type == "integer":
            cast.append(f"try_cast({v} as bigint) as {p}")
            valid = f"{p} = try_cast({v} as double)"  # '2.5' would round; it is not an integer
        else:
            raise ValueError(f"unknown column type {column.type!r}")
        checked += [v, p, f"coalesce({v} is null or ({valid}), false) as _ok{i}"]
        final += [f"case when _ok{i} then {p} end as _c{i}",
                  f"case when not _ok{i} then left({v}, {MAX_RAW_VALUE_CHARS}) end as _e{i}"]
        oks.append(f"_ok{i}")
    final.append(f"not ({' and '.join(oks) or 'true'}) as _bad")
    return (
        f"select {', '.join(final + carried_names)} from ("
        f" select {', '.join(checked + carried_names)} from ("
        f"  select {', '.join(cast + carried_names)} from ("
        f"   select {', '.join(trimmed + carried_names)} from ("
        f"    select {', '.join(spaces_trimmed + list(carried))} from {relation}))))"
    )


def _text_problem(value: str, max_field_bytes: int) -> str:
    """SQL: why a text value is rejected (too long, or holds a NUL byte), else NULL."""
    return (
        f"case when strlen({value}) > {int(max_field_bytes)} then 'value of ' || "
        f"strlen({value}) || ' bytes, longer than the limit of {max_field_bytes:,} bytes per "
        f"value ({MAX_FIELD_BYTES_ENV})' "
        f"when contains({value}, chr(0)) then 'contains a NUL byte (character ' || "
        f"instr({value}, chr(0)) || '); NUL is not allowed in text values, shown here as \\0' "
        "end"
    )


# --------------------------------------------------------------------------------------------
# Parquet


def _parquet_header(con: duckdb.DuckDBPyConnection, reader_path: str) -> list[str]:
    return [row[0] for row in con.execute(
        f"describe select * from read_parquet({_literal(reader_path)})"
    ).fetchall()]


def _stage_parquet(
    con: duckdb.DuckDBPyConnection, reader_path: str, columns: Sequence[_Column],
    max_field_bytes: int,
) -> None:
    select = _staging_select(
        columns, [_ident(c.file_name) for c in columns],
        f"read_parquet({_literal(reader_path)}, file_row_number = true)",
        ["file_row_number + 1 as _line"], max_field_bytes,
    )
    con.execute(f"create temp table {_STAGE} as {select}")
    con.execute(f"create temp view {_ROWS} as select * from {_STAGE}")


# --------------------------------------------------------------------------------------------
# CSV


@dataclass(frozen=True)
class _CsvLayout:
    """What a byte scan of a CSV file tells: header, blank lines, whether anything is quoted."""

    header: bytes
    blank_lines: np.ndarray
    has_quotes: bool
    line_count: int


def _stage_csv(
    con: duckdb.DuckDBPyConnection,
    source: LandingSource,
    path: Path,
    reader_path: str,
    relative: str,
    limits: LandingLimits,
) -> tuple[list[_Column], list[_Reject], str | None]:
    """Stage one CSV file with a physical line number per row.

    Returns the columns, the malformed lines, and a warning if the file's lines are not all
    accounted for (header, blank, rejected or loaded). The header is checked first, on its own,
    so a file that breaks the contract or the column limit fails before its rows are read.
    """
    columns = _columns(source, relative, _parse_header(_read_header(path, relative), relative),
                       limits.max_columns)
    layout = _scan_csv(path)
    csv_columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(columns))) + "}"
    # Lines a row takes beyond its first, not counting empty lines inside quoted values: the
    # byte scan already counts those as blank lines (see _number_csv_rows).
    extra_lines = " + ".join(
        f"(case when contains(c{i}, chr(10)) then "
        f"length(c{i}) - length(replace(c{i}, chr(10), '')) - len(list_filter("
        f"string_split(c{i}, chr(10))[2:-2], lambda part: part in ('', chr(13)))) else 0 end)"
        for i in range(len(columns))
    ) if layout.has_quotes else "0"
    reader = (
        f"read_csv({_literal(reader_path)}, columns = {csv_columns}, header = true, "
        f"auto_detect = false, delim = ',', quote = '\"', escape = '\"', strict_mode = true, "
        f"store_rejects = true, rejects_table = '{_CSV_REJECT_ERRORS}', "
        f"rejects_scan = '{_CSV_REJECT_SCANS}', "
        # DuckDB 2.0's parallel CSV scan loses good rows near rejected ones (measured: 14,192
        # of 800,000 rows gone from a file with 200,000 malformed lines); the serial scan keeps
        # them and is as fast on two cores.
        f"parallel = false)"
    )
    select = _staging_select(columns, [f"c{i}" for i in range(len(columns))], reader,
                             [f"{extra_lines} as _extra_lines"], limits.max_field_bytes)
    con.execute(f"create temp table {_STAGE} as {select}")
    rejects, skipped_spans = _csv_rejects(con, path, columns)
    not_utf8 = sum(reject.reason == NOT_UTF8_REASON for reject in rejects)
    encoding_warning = (f"{relative}: {not_utf8:,} line(s) are not valid UTF-8 and were "
                        "rejected; is the file Latin-1 or Windows-1252?") if not_utf8 else None
    skipped_lines = _number_csv_rows(con, layout, skipped_spans)
    rows, extra_lines_total = con.execute(
        f"select count(*), coalesce(sum(_extra_lines), 0) from {_STAGE}"
    ).fetchone()
    used_free_lines = int(rows) + int(extra_lines_total)
    missing = layout.line_count - skipped_lines - used_free_lines
    if missing == 0:
        return columns, rejects, encoding_warning
    warning = (f"{relative}: {layout.line_count:,} lines, but only "
               f"{layout.line_count - missing:,} are the header, blank, rejected or loaded")
    if missing > 0:
        # The reader dropped lines without reporting them; in practice a quote opened and never
        # closed, which takes the rest of the file. Record them as one rejected record.
        first_missing = used_free_lines + 1
        line = first_missing + con.execute(
            f"select coalesce(max(skipped_through), 0) from {_SKIPS} where free_before < ?",
            [first_missing],
        ).fetchone()[0]
        rejects.append(_Reject(
            int(line), None, _line_text(path, int(line)),
            f"malformed CSV: {missing:,} line(s) from this one on were not loaded, the reader "
            "found no complete record (usually a quote that is never closed)",
        ))
    return columns, rejects, "; ".join(w for w in (warning, encoding_warning) if w)


def _read_header(path: Path, relative: str) -> bytes:
    """The first line of the (decompressed) file, without reading further than it."""
    header = bytearray()
    for chunk in _chunks_of(path, 1 << 16):
        end = chunk.find(b"\n")
        header += chunk if end < 0 else chunk[:end]
        if end >= 0:
            break
        if len(header) > MAX_HEADER_BYTES:
            raise LandingFileError(
                relative, f"header line is longer than {MAX_HEADER_BYTES:,} bytes; refused "
                "before reading its rows",
            )
    return bytes(header)


def _parse_header(header: bytes, relative: str) -> list[str]:
    text = _decode_header(header, relative).rstrip("\r\n")
    if text.strip() == "":
        raise LandingFileError(relative, "the first line must be the header, but it is empty")
    try:
        return next(csv.reader([text], delimiter=",", quotechar='"', strict=True))
    except csv.Error as error:
        raise LandingFileError(relative, f"header line is not valid CSV: {error}") from error


def _decode_header(header: bytes, relative: str) -> str:
    """The header line as text; a file that is not UTF-8 fails here, naming its encoding."""
    if header.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise LandingFileError(
            relative, "is UTF-16 encoded (it starts with the byte-order mark "
            f"{header[:2].hex(' ')}); landing CSV files must be {_SAVE_AS_UTF8}",
        )
    if b"\x00" in header:
        raise LandingFileError(
            relative, "has NUL bytes in its header line, so it is probably UTF-16 or UTF-32 "
            f"without a byte-order mark; landing CSV files must be {_SAVE_AS_UTF8}",
        )
    try:
        return header.decode("utf-8-sig")  # a UTF-8 byte-order mark is fine
    except UnicodeDecodeError as error:
        raise LandingFileError(
            relative, f"header line is not valid UTF-8 (byte 0x{header[error.start]:02x} at "
            f"byte {error.start + 1}), probably Latin-1 or Windows-1252; landing CSV files must "
            f"be {_SAVE_AS_UTF8}",
        ) from error


def _csv_rejects(
    con: duckdb.DuckDBPyConnection, path: Path, columns: Sequence[_Column]
) -> tuple[list[_Reject], list[tuple[int, int]]]:
    """Malformed records DuckDB's reader set aside, with their physical line and line count."""
    rows = con.execute(
        f"""
        select
            line_byte_position,
            min(line),
            any_value(csv_line),
            string_agg(distinct lower(cast(error_type as varchar)), ', '),
            arg_min(error_message, column_idx),
            arg_min(column_name, column_idx)
        from {_CSV_REJECT_ERRORS}
        group by line_byte_position
        order by line_byte_position
        """
    ).fetchall()
    if not rows:
        return [], []
    # DuckDB gives the 1-based byte position where its record starts; the record can begin with
    # the line breaks of blank lines before it, which are the leading line breaks of csv_line.
    starts = np.array([max(int(row[0] or 1) - 1, 0) for row in rows], dtype=np.int64)
    lines_before = _lines_before_offsets(path, starts)
    rejects: list[_Reject] = []
    spans: list[tuple[int, int]] = []
    for row, before in zip(rows, lines_before):
        byte_position, record_number, csv_line, error_types, message, reader_column = row
        csv_line = csv_line or ""
        body = csv_line.lstrip("\r\n")
        if byte_position is None:  # no position: DuckDB's record number is the best we have
            line = int(record_number)
        else:
            line = int(before) + 1 + csv_line[: len(csv_line) - len(body)].count("\n")
        body = body.rstrip("\r\n")
        spans.append((line, 1 + body.count("\n")))
        column = None  # the reader names columns c<i> (see _stage_csv)
        if reader_column and reader_column[1:].isdigit() and int(reader_column[1:]) < len(columns):
            column = columns[int(reader_column[1:])].name
        raw = body if len(body) <= MAX_RAW_VALUE_CHARS else body[:MAX_RAW_VALUE_CHARS] + "..."
        if error_types == "invalid encoding":  # DuckDB shows each bad byte as '?': show U+FFFD
            rejects.append(_Reject(line, column, _line_text(path, line), NOT_UTF8_REASON))
            continue
        rejects.append(_Reject(line, column, raw, f"malformed CSV line ({error_types}): {message}"))
    return rejects, spans


def _number_csv_rows(
    con: duckdb.DuckDBPyConnection, layout: _CsvLayout, rejected_spans: Sequence[tuple[int, int]]
) -> int:
    """Define view _ROWS: the staged rows with _line, the physical line where each row starts.
    Returns how many lines are not rows (header, blank lines, rejected records).

    Rows come out of the reader in file order (insertion order, hence rowid). Every physical line
    is the header, a blank line, part of a rejected record, or part of a loaded row (a quoted
    value with line breaks spans several lines). Row k starts on "free" line number
    1 + (lines of the rows before it); an as-of join over the sorted skipped lines turns that
    into a physical line number.
    """
    skipped = [np.array([1], dtype=np.int64), layout.blank_lines.astype(np.int64)]
    skipped += [np.arange(start, start + span, dtype=np.int64) for start, span in rejected_spans]
    skipped_lines = np.unique(np.concatenate(skipped))
    # A list parameter, not a registered Arrow table: registering costs seconds of imports.
    con.execute(
        f"""
        create temp table {_SKIPS} as
        with lines as (
            select unnest(?::bigint[]) as line
        ),
        skipped as (
            select
                line - row_number() over (order by line) as free_before,
                row_number() over (order by line) as skipped_through
            from lines
        )
        select free_before, max(skipped_through) as skipped_through
        from skipped
        group by free_before
        """,
        [skipped_lines.tolist()],
    )
    # Rowids of a new table are consecutive, but start high inside a transaction.
    first_rowid = con.execute(f"select coalesce(min(rowid), 0) from {_STAGE}").fetchone()[0]
    # Rows spanning several lines are few: their running total of extra lines is computed on
    # them alone and joined back as of each row, instead of a window over every row.
    con.execute(
        f"create temp table {_EXTRA} as "
        f"select rowid as after_rowid, sum(_extra_lines) over (order by rowid) as lines "
        f"from {_STAGE} where _extra_lines > 0"
    )
    multi_line = con.execute(f"select count(*) > 0 from {_EXTRA}").fetchone()[0]
    if len(skipped_lines) == 1 and not multi_line:  # only the header: row k is on line k + 1
        con.execute(
            f"create temp view {_ROWS} as select * exclude (_extra_lines), "
            f"rowid - {int(first_rowid)} + 2 as _line from {_STAGE}"
        )
        return len(skipped_lines)
    # The as-of joins sort their input, so they run on row ids alone, and the (wide) staged
    # rows are joined back by row id.
    con.execute(
        f"""
        create temp table {_LINES} as
        with row_ids as (
            select rowid as _rid from {_STAGE}
        ),
        with_free_line as (
            select
                row_ids._rid,
                row_ids._rid - {int(first_rowid)} + 1 + coalesce(extra.lines, 0) as free_line
            from row_ids
            asof left join {_EXTRA} as extra on row_ids._rid > extra.after_rowid
        )
        select numbered._rid, numbered.free_line + steps.skipped_through as _line
        from with_free_line as numbered
        asof inner join {_SKIPS} as steps on numbered.free_line > steps.free_before
        """
    )
    con.execute(
        f"create temp view {_ROWS} as "
        f"select staged.* exclude (_extra_lines), lines._line "
        f"from {_STAGE} as staged inner join {_LINES} as lines on staged.rowid = lines._rid"
    )
    return len(skipped_lines)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _open_text_bytes(path: Path) -> BinaryIO:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _chunks(path: Path) -> Iterable[bytes]:
    return _chunks_of(path, _CHUNK_BYTES)


def _chunks_of(path: Path, size: int) -> Iterator[bytes]:
    with _open_text_bytes(path) as handle:
        while chunk := handle.read(size):
            yield chunk


def _scan_csv(path: Path) -> _CsvLayout:
    """One vectorised pass over the (decompressed) bytes: header, blank line numbers, quotes."""
    header = bytearray()
    header_done = False
    has_quotes = False
    blanks: list[np.ndarray] = []
    offset = 0  # bytes before this chunk
    newlines = 0  # newlines before this chunk
    last_newline = -1  # position of the last newline seen
    last_byte = -1
    for chunk in _chunks(path):
        data = np.frombuffer(chunk, dtype=np.uint8)
        positions = np.flatnonzero(data == 10)
        if not header_done:
            end = int(positions[0]) if positions.size else len(chunk)
            header += chunk[:end]
            header_done = positions.size > 0
        has_quotes = has_quotes or b'"' in chunk
        if positions.size:
            starts = np.concatenate(([last_newline + 1 - offset], positions[:-1] + 1))
            lengths = positions - starts
            before = positions - 1  # index of the byte before each newline (may be -1)
            before_byte = np.where(before >= 0, data[np.maximum(before, 0)], last_byte)
            blank = (lengths == 0) | ((lengths == 1) & (before_byte == 13))
            blanks.append(newlines + 1 + np.flatnonzero(blank))
            newlines += int(positions.size)
            last_newline = offset + int(positions[-1])
        offset += len(chunk)
        last_byte = int(data[-1])
    blank_lines = np.concatenate(blanks) if blanks else np.zeros(0, dtype=np.int64)
    line_count = newlines + (1 if offset > last_newline + 1 else 0)  # last line without \n
    return _CsvLayout(bytes(header), blank_lines[blank_lines > 1], has_quotes, line_count)


def _line_text(path: Path, line: int) -> str:
    """The text of one physical line (1-based), cut at MAX_RAW_VALUE_CHARS characters."""
    seen = 0  # newlines before the current chunk
    collected: bytearray | None = None  # the line's bytes, once its start is found
    for chunk in _chunks(path):
        positions = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10)
        begin = 0
        if collected is None:
            if line - 1 > seen + positions.size:  # starts in a later chunk
                seen += int(positions.size)
                continue
            collected = bytearray()
            if line - 1 > seen:  # after the (line - 1)th newline, which is in this chunk
                begin = int(positions[line - 2 - seen]) + 1
        after = positions[positions >= begin]
        end = int(after[0]) if after.size else len(chunk)
        collected += chunk[begin:end]
        if after.size or len(collected) > 4 * MAX_RAW_VALUE_CHARS:
            break
        seen += int(positions.size)
    text = bytes(collected or b"").decode("utf-8", errors="replace")
    return text.rstrip("\r")[:MAX_RAW_VALUE_CHARS]


def _lines_before_offsets(path: Path, offsets: np.ndarray) -> np.ndarray:
    """For sorted byte offsets in the (decompressed) file: how many newlines come before each."""
    result = np.zeros(len(offsets), dtype=np.int64)
    offset = 0
    newlines = 0
    for chunk in _chunks(path):
        end = offset + len(chunk)
        inside = (offsets >= offset) & (offsets < end)
        if inside.any():
            positions = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10)
            result[inside] = newlines + np.searchsorted(positions, offsets[inside] - offset)
            newlines += int(positions.size)
        else:
            newlines += chunk.count(b"\n")
        offset = end
        if offset > offsets[-1]:
            break
    result[offsets >= offset] = newlines
    return result


# --------------------------------------------------------------------------------------------
# Helpers


def _prepare_session(con: duckdb.DuckDBPyConnection) -> None:
    # Timestamps without an offset are UTC; the CSV row order must follow the file.
    con.execute("set TimeZone = 'UTC'")
    con.execute("set preserve_insertion_order = true")
    con.execute("set enable_progress_bar = false")  # no bars in pipeline logs


def _drop_session_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"drop view if exists temp.{_ROWS}")
    for table in (_STAGE, _SKIPS, _EXTRA, _LINES, _BAD, _CSV_REJECT_ERRORS, _CSV_REJECT_SCANS):
        con.execute(f"drop table if exists temp.{table}")


def _count(con: duckdb.DuckDBPyConnection, sql: str, parameters: list[object]) -> int:
    row = con.execute(sql, parameters).fetchone()
    return int(row[0]) if row else 0


def _raw_table(source: LandingSource) -> str:
    return f"{RAW_SCHEMA}.{_ident(source.name)}"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _relative(landing_dir: Path, path: Path) -> str:
    return path.relative_to(landing_dir).as_posix()
