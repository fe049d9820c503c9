"""Dirt common to every source, the ground truth, and the append-only file writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from orchestration.ingestion.contract import SOURCES, LandingSource
from tools.sample_data.people import People
from tools.sample_data.shapes import (BAD_NUMBERS, BAD_TIMESTAMPS, COUNTRIES, DUPLICATE_ROW_RATE,
    DUPLICATE_SOURCES, FIRST_NAMES, JUNK_COLUMNS, JUNK_CONTACT_RATE, JUNK_NAME_RATE, LAST_NAMES)
from tools.sample_data.values import CITY_NAMES, null_where, pick, replace_some
from tools.sample_data.world import Batch, World


def output_columns(source: LandingSource) -> tuple[str, ...]:
    return source.known_columns


def finish(source: LandingSource, batch: Batch, rng: np.random.Generator,
           bad_row_rate: float) -> pa.Table:
    """The batch as a table with junk placeholders, unparseable values, duplicate deliveries,
    in time order."""
    columns = dict(batch.columns)
    unknown = set(columns) - set(output_columns(source))
    if unknown:
        raise ValueError(f"{source.name}: columns outside the landing contract: {sorted(unknown)}")
    for name, junk in JUNK_COLUMNS.get(source.name, {}).items():
        rate = JUNK_NAME_RATE if name.endswith("_name") else JUNK_CONTACT_RATE
        columns[name] = replace_some(columns[name], rng, rate, junk)
    typed = [c for c in output_columns(source) if source.column_type(c) != "text"
             and c in columns]
    bad = rng.random(batch.n) < bad_row_rate
    target = rng.integers(max(len(typed), 1), size=batch.n)
    for t, name in enumerate(typed):
        rows = bad & (target == t)
        if rows.any():
            values = BAD_TIMESTAMPS if source.column_type(name) == "timestamp" else BAD_NUMBERS
            columns[name] = pc.if_else(pa.array(rows), pick(rng, values, batch.n), columns[name])
    schema = pa.schema([(c, pa.string()) for c in output_columns(source)])
    table = pa.table([columns.get(c, pa.nulls(batch.n, pa.string())) for c in schema.names],
                     schema=schema)
    rows = np.arange(batch.n)
    if source.name in DUPLICATE_SOURCES:
        rows = np.concatenate([rows, np.flatnonzero(rng.random(batch.n) < DUPLICATE_ROW_RATE)])
    rows = rows[np.argsort(batch.when[rows], kind="stable")]
    return table.take(rows)


TRUTH_SCHEMA = pa.schema([("source", pa.string()), ("source_record_id", pa.string()),
                          ("person_id", pa.string())])


def truth_table(source: LandingSource, batch: Batch, people: People) -> pa.Table | None:
    """One row per record of the source that carries a person."""
    if batch.owners is None:
        return None
    rows = np.arange(batch.n) if batch.truth_rows is None else batch.truth_rows
    return pa.table([
        pa.array([source.name] * len(rows), pa.string()),
        pc.take(batch.columns[source.record_id], rows),
        pc.take(people.person_id, batch.owners[rows]),
    ], schema=TRUTH_SCHEMA)


def people_table(world: World, people: People) -> pa.Table:
    country = pc.take(pa.array(COUNTRIES), people.country)
    shared = np.zeros(people.n, dtype=bool)
    shared[people.household_hosts] = True
    shared[people.household_partners] = True
    return pa.table({
        "person_id": people.person_id,
        "is_known": pa.array(people.known),
        "email": people.email,
        "alt_email": pc.take(people.email_slots, 4 * people.n + np.arange(people.n)),
        "phone": people.phone,
        "phone_shared_with_household": pa.array(shared),
        "first_name": pc.take(pa.array(FIRST_NAMES), people.first),
        "last_name": pc.take(pa.array(LAST_NAMES), people.last),
        "country": null_where(country, ~people.known),
        "city": null_where(pc.take(CITY_NAMES, people.city), ~people.known),
        "shop_customer_id": people.shop_customer_id,
        "loyalty_id": people.loyalty_id,
        "personal_devices": pa.array(people.n_devices.astype(np.int32)),
        "first_seen_at": pc.cast(pa.array(people.t0.astype("datetime64[s]")),
                                 pa.timestamp("s", tz="UTC")),
    })


class Output:
    """Append-only writers: one landing file per source plus the ground-truth files."""

    def __init__(self, out: Path, fmt: str) -> None:
        if fmt not in ("csv", "parquet"):
            raise ValueError(f"format must be csv or parquet, not {fmt!r}")
        self.fmt = fmt
        self.rows = {s.name: 0 for s in SOURCES}
        self.truth_dir = out / "_ground_truth"
        self.truth_dir.mkdir(parents=True, exist_ok=True)
        self.schemas = {s.name: pa.schema([(c, pa.string()) for c in output_columns(s)])
                        for s in SOURCES}
        # CSV: pyarrow's CSVWriter keeps its last table alive, so append with write_csv instead.
        self.files: dict[str, pa.NativeFile] = {}
        self.parquet: dict[str, pq.ParquetWriter] = {}
        for source in SOURCES:
            for suffix in ("csv", "parquet"):  # never leave a stale twin in the other format
                (out / f"{source.name}.{suffix}").unlink(missing_ok=True)
            path = out / f"{source.name}.{fmt}"
            if fmt == "csv":
                self.files[source.name] = pa.OSFile(str(path), "wb")
                pacsv.write_csv(self.schemas[source.name].empty_table(), self.files[source.name])
            else:
                self.parquet[source.name] = pq.ParquetWriter(path, self.schemas[source.name])
        self.truth = pq.ParquetWriter(self.truth_dir / "truth.parquet", TRUTH_SCHEMA)
        self.people: pq.ParquetWriter | None = None

    def write(self, source: str, table: pa.Table) -> None:
        if not table.num_rows:
            return
        if self.fmt == "csv":
            pacsv.write_csv(table, self.files[source], pacsv.WriteOptions(include_header=False))
        else:
            self.parquet[source].write_table(table)
        self.rows[source] += table.num_rows

    def write_truth(self, table: pa.Table) -> None:
        if table.num_rows:
            self.truth.write_table(table)

    def write_people(self, table: pa.Table) -> None:
        if self.people is None:
            self.people = pq.ParquetWriter(self.truth_dir / "people.parquet", table.schema)
        self.people.write_table(table)

    def close(self) -> None:
        for writer in [*self.files.values(), *self.parquet.values(), self.truth]:
            writer.close()
        if self.people is not None:
            self.people.close()


def hubs_table(world: World, households: list[pa.Array]) -> pa.Table:
    """Identifiers shared by several people: kiosk devices and household phones."""
    phones = pa.concat_arrays(households) if households else pa.array([], pa.string())
    return pa.table({
        "identifier_type": pa.array(
            ["anonymous_id"] * len(world.kiosk_ids) + ["phone"] * len(phones), pa.string()),
        "identifier_value": pa.concat_arrays([world.kiosk_ids, phones]),
        "kind": pa.array(["kiosk_device"] * len(world.kiosk_ids)
                         + ["household_phone"] * len(phones), pa.string()),
    })
