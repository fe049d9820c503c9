"""Files destination: one CSV, Parquet or JSONL file per batch in a folder or fsspec URL, atomically."""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

import fsspec

from orchestration.activation.destinations import (
    Batch,
    BatchResult,
    DestinationError,
    FieldType,
    TransientError,
)

if TYPE_CHECKING:
    from orchestration.activation.config import FilesDestination, SyncConfig

EXTENSIONS = {"csv": "csv", "parquet": "parquet", "jsonl": "jsonl"}


def encode(records: list[dict[str, Any]], columns: list[str], file_format: str) -> bytes:
    """Serialise records in a file format (CSV cells holding lists/dicts get JSON text)."""
    if file_format == "jsonl":
        return "".join(json.dumps(r, default=str) + "\n" for r in records).encode()
    if file_format == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for record in records:
            writer.writerow({k: json.dumps(v) if isinstance(v, dict | list) else v
                             for k, v in record.items()})
        return out.getvalue().encode()
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(records) if records else pa.table({c: [] for c in columns})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def write_atomically(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Write beside the target under a hidden temporary name, then rename over it."""
    folder, _, name = path.rpartition("/")
    temporary = f"{folder}/.{name}.tmp"
    with fs.open(temporary, "wb") as handle:
        handle.write(data)
    fs.mv(temporary, path)


class FileFolder:
    """Each batch becomes `<url>/<sync>/<operation>-<idempotency key>.<ext>`: a re-sent batch
    overwrites its own file, so a crash and re-run never duplicates rows."""

    def __init__(self, sync: "SyncConfig") -> None:
        self.sync = sync
        self.settings: FilesDestination = sync.destination  # type: ignore[assignment]
        self.columns: list[str] = []
        self.fs: fsspec.AbstractFileSystem | None = None
        self.folder = ""

    def open(self, fields: list[FieldType]) -> None:
        self.columns = ["_operation", "_key"] + [f.name for f in fields]
        try:
            self.fs, root = fsspec.core.url_to_fs(self.settings.url)
            self.folder = f"{root.rstrip('/')}/{self.sync.name}"
            self.fs.makedirs(self.folder, exist_ok=True)
        except (ValueError, ImportError) as exc:
            raise DestinationError(f"files destination {self.settings.url!r}: {exc}") from exc

    def write(self, batch: Batch) -> BatchResult:
        assert self.fs is not None, "open() first"
        records = [{"_operation": batch.operation, "_key": row.key, **row.fields}
                   for row in batch.rows]
        path = (f"{self.folder}/{batch.operation}-{batch.idempotency_key}."
                f"{EXTENSIONS[self.settings.format]}")
        try:
            write_atomically(self.fs, path, encode(records, self.columns, self.settings.format))
        except OSError as exc:
            raise TransientError(f"cannot write {path}: {exc}") from exc
        return BatchResult()

    def close(self) -> None:
        return None
