"""Stage one CSV file: the header checked first, a byte scan for line numbers, DuckDB's strict reader.

Every physical line of a file is accounted for: the header, a blank line, part of a rejected record
or part of a loaded row; each loaded row keeps the line it starts on (`_source_line`).
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import duckdb
import numpy as np

from orchestration.ingestion.columns import (
    MAX_RAW_VALUE_CHARS,
    Column,
    Reject,
    match_columns,
    staging_select,
)
from orchestration.ingestion.contract import LandingLimits, LandingSource
from orchestration.ingestion.errors import LandingFileError
from orchestration.ingestion.session import (
    CSV_REJECT_ERRORS,
    CSV_REJECT_SCANS,
    EXTRA,
    LINES,
    ROWS,
    SKIPS,
    STAGE,
    literal,
)

_SAVE_AS_UTF8 = "UTF-8: re-export or convert the file (e.g. iconv -t UTF-8)"
NOT_UTF8_REASON = ("not valid UTF-8 (bytes of another encoding, e.g. Latin-1 or Windows-1252; "
                   "save the file as UTF-8)")
_CHUNK_BYTES = 1 << 23
# The header line is read on its own before anything else, so a file too wide fails at once.
MAX_HEADER_BYTES = 1 << 20


@dataclass(frozen=True)
class CsvLayout:
    """What a byte scan of a CSV file tells: header, blank lines, whether anything is quoted."""

    header: bytes
    blank_lines: np.ndarray
    has_quotes: bool
    line_count: int


def stage_csv(
    con: duckdb.DuckDBPyConnection,
    source: LandingSource,
    path: Path,
    reader_path: str,
    relative: str,
    limits: LandingLimits,
) -> tuple[list[Column], list[Reject], str | None]:
    """Stage one CSV file with a physical line number per row.

    Returns the columns, the malformed lines, and a warning if the file's lines are not all
    accounted for (header, blank, rejected or loaded). The header is checked first, on its own,
    so a file that breaks the contract or the column limit fails before its rows are read.
    """
    columns = match_columns(source, relative, _parse_header(_read_header(path, relative), relative),
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
        f"read_csv({literal(reader_path)}, columns = {csv_columns}, header = true, "
        f"auto_detect = false, delim = ',', quote = '\"', escape = '\"', strict_mode = true, "
        f"store_rejects = true, rejects_table = '{CSV_REJECT_ERRORS}', "
        f"rejects_scan = '{CSV_REJECT_SCANS}', "
        # DuckDB 2.0's parallel CSV scan loses good rows near rejected ones (measured: 14,192
        # of 800,000 rows gone from a file with 200,000 malformed lines); the serial scan keeps
        # them and is as fast on two cores.
        f"parallel = false)"
    )
    select = staging_select(columns, [f"c{i}" for i in range(len(columns))], reader,
                             [f"{extra_lines} as _extra_lines"], limits.max_field_bytes)
    con.execute(f"create temp table {STAGE} as {select}")
    rejects, skipped_spans = _csv_rejects(con, path, columns)
    not_utf8 = sum(reject.reason == NOT_UTF8_REASON for reject in rejects)
    encoding_warning = (f"{relative}: {not_utf8:,} line(s) are not valid UTF-8 and were "
                        "rejected; is the file Latin-1 or Windows-1252?") if not_utf8 else None
    skipped_lines = _number_csv_rows(con, layout, skipped_spans)
    rows, extra_lines_total = con.execute(
        f"select count(*), coalesce(sum(_extra_lines), 0) from {STAGE}"
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
            f"select coalesce(max(skipped_through), 0) from {SKIPS} where free_before < ?",
            [first_missing],
        ).fetchone()[0]
        rejects.append(Reject(
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
    con: duckdb.DuckDBPyConnection, path: Path, columns: Sequence[Column]
) -> tuple[list[Reject], list[tuple[int, int]]]:
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
        from {CSV_REJECT_ERRORS}
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
    rejects: list[Reject] = []
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
        column = None  # the reader names columns c<i> (see stage_csv)
        if reader_column and reader_column[1:].isdigit() and int(reader_column[1:]) < len(columns):
            column = columns[int(reader_column[1:])].name
        raw = body if len(body) <= MAX_RAW_VALUE_CHARS else body[:MAX_RAW_VALUE_CHARS] + "..."
        if error_types == "invalid encoding":  # DuckDB shows each bad byte as '?': show U+FFFD
            rejects.append(Reject(line, column, _line_text(path, line), NOT_UTF8_REASON))
            continue
        rejects.append(Reject(line, column, raw, f"malformed CSV line ({error_types}): {message}"))
    return rejects, spans


def _number_csv_rows(
    con: duckdb.DuckDBPyConnection, layout: CsvLayout, rejected_spans: Sequence[tuple[int, int]]
) -> int:
    """Define view ROWS: the staged rows with _line, the physical line where each row starts.
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
        create temp table {SKIPS} as
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
    first_rowid = con.execute(f"select coalesce(min(rowid), 0) from {STAGE}").fetchone()[0]
    # Rows spanning several lines are few: their running total of extra lines is computed on
    # them alone and joined back as of each row, instead of a window over every row.
    con.execute(
        f"create temp table {EXTRA} as "
        f"select rowid as after_rowid, sum(_extra_lines) over (order by rowid) as lines "
        f"from {STAGE} where _extra_lines > 0"
    )
    multi_line = con.execute(f"select count(*) > 0 from {EXTRA}").fetchone()[0]
    if len(skipped_lines) == 1 and not multi_line:  # only the header: row k is on line k + 1
        con.execute(
            f"create temp view {ROWS} as select * exclude (_extra_lines), "
            f"rowid - {int(first_rowid)} + 2 as _line from {STAGE}"
        )
        return len(skipped_lines)
    # The as-of joins sort their input, so they run on row ids alone, and the (wide) staged
    # rows are joined back by row id.
    con.execute(
        f"""
        create temp table {LINES} as
        with row_ids as (
            select rowid as _rid from {STAGE}
        ),
        with_free_line as (
            select
                row_ids._rid,
                row_ids._rid - {int(first_rowid)} + 1 + coalesce(extra.lines, 0) as free_line
            from row_ids
            asof left join {EXTRA} as extra on row_ids._rid > extra.after_rowid
        )
        select numbered._rid, numbered.free_line + steps.skipped_through as _line
        from with_free_line as numbered
        asof inner join {SKIPS} as steps on numbered.free_line > steps.free_before
        """
    )
    con.execute(
        f"create temp view {ROWS} as "
        f"select staged.* exclude (_extra_lines), lines._line "
        f"from {STAGE} as staged inner join {LINES} as lines on staged.rowid = lines._rid"
    )
    return len(skipped_lines)


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


def _scan_csv(path: Path) -> CsvLayout:
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
    return CsvLayout(bytes(header), blank_lines[blank_lines > 1], has_quotes, line_count)


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
