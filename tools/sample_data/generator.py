"""generate(): people chunk by chunk, every contract source written, with ground truth."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from orchestration.ingestion.contract import SOURCES
from tools.sample_data.people import make_people
from tools.sample_data.sources import chunk_batches
from tools.sample_data.world import Counters, make_world
from tools.sample_data.writers import Output, finish, hubs_table, people_table, truth_table

CHUNK_SIZE = 25_000  # people generated (and appended to every file) per step; bounds memory


def generate(customers: int, seed: int, out: Path, fmt: str = "csv",
             end_date: date = date(2026, 10, 31), months: int = 24,
             bad_row_rate: float = 0.0005) -> dict[str, int]:
    """Write one landing file per contract source for `customers` people; rows per source."""
    if customers < 1:
        raise ValueError("customers must be at least 1")
    if seed < 0:
        raise ValueError("seed must be non-negative")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    world = make_world(customers, seed, end_date, months)
    counters = Counters()
    output = Output(out, fmt)
    households: list[pa.Array] = []
    try:
        for chunk, first in enumerate(range(0, customers, CHUNK_SIZE)):
            rng = np.random.default_rng([seed, chunk])
            people = make_people(world, rng, first, min(CHUNK_SIZE, customers - first))
            batches = chunk_batches(world, rng, people, counters)
            for source in SOURCES:
                batch = batches.pop(source.name)  # free each source once written
                table = finish(source, batch, rng, bad_row_rate)
                output.write(source.name, table)
                truth = truth_table(source, batch, people)
                if truth is not None:
                    output.write_truth(truth)
                del batch, table, truth
            output.write_people(people_table(world, people))
            households.append(pc.take(people.phone, people.household_hosts))
            del people
    finally:
        output.close()
    pq.write_table(hubs_table(world, households), out / "_ground_truth" / "hubs.parquet")
    return dict(output.rows)
