"""Pairwise identity quality against ground truth, and a real load + dbt run to score."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from orchestration.ingestion import load_landing

ROOT = Path(__file__).resolve().parents[2]
DBT = str(ROOT / ".venv" / "bin" / "dbt")
IDENTITY_SELECT = (
    "path:models/intermediate/identity", "path:models/intermediate/profiles",
    "path:models/marts/identity", "path:models/marts/customers", "path:models/intermediate/privacy",
    "path:models/marts/privacy",
    "consent_purposes",
)


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


def load(landing: Path, warehouse: Path) -> None:
    """Load a landing folder into a fresh warehouse file (the real loader)."""
    con = duckdb.connect(str(warehouse))
    try:
        load_landing(landing, con)
    finally:
        con.close()


def run_dbt(warehouse: Path, *, staging: bool = True,
            identity_vars: dict[str, Any] | None = None) -> None:
    """`dbt build` (no tests) of staging (optional) and the identity models on `warehouse`; raises on failure."""
    env = {**os.environ, "CDP_WAREHOUSE": str(warehouse), "CDP_DBT_TARGET": "duckdb"}
    env.pop("CDP_AS_OF", None)
    select = [*(["path:models/staging"] if staging else []), *IDENTITY_SELECT]
    extra = ["--vars", json.dumps({"identity": identity_vars})] if identity_vars else []
    result = subprocess.run(
        [DBT, "build", "--exclude-resource-type", "test", "unit_test", "--profiles-dir",
         "profiles", "--select", *select, *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"dbt run failed on {warehouse}:\n{result.stdout[-4000:]}")


def score_warehouse(warehouse: Path, truth_dir: Path) -> Quality:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return score(con, truth_dir / "truth.parquet")
    finally:
        con.close()
