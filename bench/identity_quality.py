"""Score identity resolution against the sample-data generator's ground truth.

Pairwise precision, recall and F1 over source records (two records are a pair when they share a
profile / a true person), and the largest number of true people in one profile.

    .venv/bin/python -m bench.identity_quality --warehouse /tmp/w.duckdb --truth DIR/_ground_truth
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb


@dataclass(frozen=True)
class Quality:
    records: int
    resolved_records: int
    precision: float
    recall: float
    f1: float
    max_people_per_profile: int
    profiles_with_several_people: int


SCORE_SQL = """
with truth as (
    select source, source_record_id, person_id
    from read_parquet(?)
),
resolved as (
    select
        truth.source,
        truth.source_record_id,
        truth.person_id,
        records.customer_id,
        coalesce(records.customer_id, 'unresolved:' || truth.source || ':' || truth.source_record_id)
            as profile_id
    from truth
    left join main_marts.customer_source_records as records
        on truth.source = records.source and truth.source_record_id = records.source_record_id
),
cells as (
    select profile_id, person_id, count(*) as n from resolved group by all
),
profiles as (select profile_id, sum(n) as n, count(*) as people from cells group by all),
people as (select person_id, sum(n) as n from cells group by all)
select
    (select count(*) from resolved) as records,
    (select count(customer_id) from resolved) as resolved_records,
    (select sum(n * (n - 1) / 2) from cells) as true_positive_pairs,
    (select sum(n * (n - 1) / 2) from profiles) as predicted_pairs,
    (select sum(n * (n - 1) / 2) from people) as true_pairs,
    (select max(people) from profiles) as max_people,
    (select count(*) from profiles where people > 1) as mixed_profiles
"""


def score(con: duckdb.DuckDBPyConnection, truth_file: Path) -> Quality:
    """Score the warehouse's customer_source_records against truth.parquet."""
    row = con.execute(SCORE_SQL, [str(truth_file)]).fetchall()[0]
    records, resolved, tp, predicted, true, max_people, mixed = row
    precision = float(tp) / float(predicted) if predicted else 1.0
    recall = float(tp) / float(true) if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Quality(
        records=int(records), resolved_records=int(resolved), precision=precision, recall=recall,
        f1=f1, max_people_per_profile=int(max_people), profiles_with_several_people=int(mixed),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--truth", type=Path, required=True, help="the _ground_truth folder")
    args = parser.parse_args()
    con = duckdb.connect(str(args.warehouse), read_only=True)
    print(json.dumps(asdict(score(con, args.truth / "truth.parquet")), indent=2))


if __name__ == "__main__":
    main()
